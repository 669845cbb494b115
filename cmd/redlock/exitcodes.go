package main

// Exit statuses. "run" otherwise exits with its command's own status, so the
// statuses of its own outcomes are chosen away from the ones commands commonly
// use: 75 is sysexits' EX_TEMPFAIL ("try again later"), and 126/127 follow
// the shells' convention for a command that cannot be run.
const (
	// exitOK: success; for status, the lock is held on a quorum.
	exitOK = 0
	// exitFailed: the operation failed (reset incomplete, demo failed).
	exitFailed = 1
	// exitUsage: bad flags, arguments or node URLs; nothing was done.
	exitUsage = 2
	// exitFree: status only: the lock is not held on a quorum.
	exitFree = 3
	// exitUnknown: status only: too few nodes answered to tell.
	exitUnknown = 4
	// exitNotObtained: run could not obtain the lock (held by another owner
	// or no quorum reachable) before --wait ran out or at once with --no-wait.
	exitNotObtained = 75
	// exitLost: run lost the lock while the command ran; the command was
	// sent SIGTERM, then SIGKILL after --grace.
	exitLost = 76
	// exitCannotExec: run found the command but could not start it.
	exitCannotExec = 126
	// exitNotFound: run could not find the command.
	exitNotFound = 127
	// exitSignalBase: a status above it is 128+N: killed by signal N (the
	// command), or interrupted by signal N while waiting (redlock itself).
	exitSignalBase = 128
)

const exitStatusHelp = `Exit statuses:
  0       success (run: the command's own status is passed through; status: the lock is held on a quorum)
  1       failure (reset: a node failed; demo: the locked run did not sell exactly the stock)
  2       bad flags, arguments or node URLs
  3       status: the lock is not held on a quorum
  4       status: too few nodes answered to tell
  75      run: the lock could not be obtained (held by another owner, or no quorum reachable)
  76      run: the lock was lost while the command ran; the command was sent SIGTERM, then SIGKILL
  126     run: the command could not be started
  127     run: the command was not found
  128+N   run: the command was killed by signal N, or redlock was interrupted by signal N while waiting
`
