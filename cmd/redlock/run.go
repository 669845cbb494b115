package main

import (
	"errors"
	"flag"
	"io/fs"
	"os/exec"
	"time"

	"github.com/quorumlock/quorumlock/redlock"
)

const runHelp = `usage: redlock run --name NAME [--ttl 30s] [--wait 1m | --no-wait] [--grace 10s]
                   [--fence-env VAR] [--quiet] -- CMD [ARGS...]

Obtains the lock called NAME on a quorum of the nodes, runs CMD while
renewing the lock (each time a third of --ttl has passed), releases it when
CMD exits, and exits with CMD's status. Two runs with the same NAME never run
their commands at the same time, on any hosts that share the nodes.

While another owner holds the lock, run waits up to --wait (on a terminal,
one line says who holds it and for how long), or gives up at once with
--no-wait.

With --fence-env VAR, CMD finds the lock's fencing token in $VAR: a number
larger for every later holder of any lock under the same prefix. Have the
storage CMD writes to refuse a token smaller than the last one it saw: a CMD
that was paused past its lock's validity is then refused instead of
overwriting its successor's work.

CMD runs in a process group of its own: SIGINT, SIGTERM, SIGHUP and SIGQUIT
sent to redlock (Ctrl-C included) are forwarded to that group; Ctrl-Z is
refused, since a stopped redlock would let the lock lapse while CMD runs on;
and CMD reads /dev/null instead of a terminal. If the lock is lost while CMD
runs (a renewal does not reach a quorum: nodes down or unreachable), the
group is sent SIGTERM, then SIGKILL if it is still running after --grace, and
run exits with 76. If redlock itself is killed, Linux kills CMD.

Exit status:
  CMD's own   (128+N when CMD was killed by signal N)
  75          the lock could not be obtained: held by another owner, or no
              quorum of nodes reachable (within --wait, or at once with --no-wait)
  76          the lock was lost while CMD ran; CMD was stopped
  126         CMD could not be started
  127         CMD was not found
  128+N       redlock was interrupted by signal N while waiting for the lock
  2           bad flags, arguments or node URLs

Examples:
  export REDLOCK_NODES=redis://10.0.0.1:6379,redis://10.0.0.2:6379,redis://10.0.0.3:6379
  redlock run --name nightly-report -- ./report.sh --full
  redlock run --name nightly-report --no-wait -- ./report.sh; [ $? -eq 75 ] && echo "another run holds the lock"
  redlock run --name migrate --ttl 1m --wait 10m --grace 30s -- sh -c 'make migrate && make seed'
  redlock run --name ledger --fence-env FENCE -- sh -c 'psql -c "UPDATE ledger SET v = 1, fence = $FENCE WHERE fence < $FENCE"'
`

// validEnvName reports whether s can name an environment variable in a
// shell: letters, digits and underscores, not starting with a digit.
func validEnvName(s string) bool {
	for i, c := range s {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

func (c *cli) run(args []string) int {
	cmd := c.newCommand("run", runHelp)
	nf := cmd.addNodeFlags()
	r := &runner{c: c, cmd: cmd}
	cmd.fs.StringVar(&r.name, "name", "", "name of the lock (required)")
	cmd.fs.DurationVar(&r.ttl, "ttl", 30*time.Second, "time to live of the lock; it is renewed each time a third of it has passed, and a holder that dies keeps it at most this long")
	cmd.fs.DurationVar(&r.wait, "wait", time.Minute, "how long to wait for the lock while another owner holds it")
	cmd.fs.BoolVar(&r.noWait, "no-wait", false, "make one attempt and exit with 75 if the lock is held")
	cmd.fs.DurationVar(&r.grace, "grace", 10*time.Second, "after the lock is lost, time between SIGTERM and SIGKILL to the command")
	cmd.fs.BoolVar(&r.quiet, "quiet", false, "no progress line while waiting")
	cmd.fs.StringVar(&r.fenceEnv, "fence-env", "", "pass the lock's fencing token to the command in this environment variable (obtains the lock with fencing)")
	argv, status, ok := cmd.parse(args, false)
	if !ok {
		return status
	}
	waitSet := false
	cmd.fs.Visit(func(f *flag.Flag) { waitSet = waitSet || f.Name == "wait" })
	switch {
	case r.name == "":
		return cmd.usageError("--name is required")
	case len(argv) == 0:
		return cmd.usageError("no command to run: redlock run --name NAME -- CMD [ARGS...]")
	case r.ttl <= 0:
		return cmd.usageError("--ttl must be positive")
	case r.noWait && waitSet:
		return cmd.usageError("give --wait or --no-wait, not both")
	case !r.noWait && r.wait <= 0:
		return cmd.usageError("--wait must be positive (--no-wait makes a single attempt)")
	case r.grace < 0:
		return cmd.usageError("--grace must not be negative")
	case r.fenceEnv != "" && !validEnvName(r.fenceEnv):
		return cmd.usageError("--fence-env %q is not a valid environment variable name", r.fenceEnv)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return cmd.fail(exitCannotExec, "%v", err)
		}
		return cmd.fail(exitNotFound, "%v", err)
	}
	r.path, r.argv = path, argv

	var opts []redlock.Option
	if r.noWait {
		opts = append(opts, redlock.WithBackoff(redlock.NoRetry()))
	}
	if r.fenceEnv != "" {
		opts = append(opts, redlock.WithFencing())
	}
	lk, _, closeAll, err := cmd.open(nf, opts...)
	if err != nil {
		return cmd.usageError("%v", err)
	}
	defer closeAll()
	r.lk = lk
	return r.run()
}
