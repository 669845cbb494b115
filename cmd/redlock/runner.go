package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/quorumlock/quorumlock/redlock"
)

// Why the wait for the lock was cut short.
var (
	errWaitOver  = errors.New("--wait ran out")
	errSignalled = errors.New("interrupted by a signal")
	// errTooLate is fn's answer when the lock was obtained just as the
	// wait was cut short: the command is not started.
	errTooLate = errors.New("the wait was cut short as the lock was obtained")
)

// groupPoll is how often a stopped command's process group is checked for
// survivors during the grace period.
const groupPoll = 20 * time.Millisecond

// runner is one "redlock run": the wait for the lock, then the command,
// supervised while the lock is held.
type runner struct {
	c   *cli
	cmd *command
	lk  *redlock.Locker

	// Set from the flags.
	name             string
	ttl, wait, grace time.Duration
	noWait, quiet    bool
	fenceEnv         string
	path             string
	argv             []string

	waitCtx      context.Context // ends when the wait for the lock is cut short
	waitCancel   context.CancelCauseFunc
	stopProgress func()
	exitStatus   int   // the command's, once it has exited
	startErr     error // why the command could not be started

	mu            sync.Mutex     // guards what follows, shared with the signal relay and the watcher
	started       bool           // the lock is held and the command about to start
	child         *os.Process    // the running command
	pendingSignal syscall.Signal // received between obtaining the lock and starting the command
	interruptedBy syscall.Signal // the signal that cut the wait short
	lostCause     error          // why the lock ended while the command ran
}

func (r *runner) run() int {
	r.waitCtx, r.waitCancel = context.WithCancelCause(context.Background())
	defer r.waitCancel(nil)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTSTP)
	relayDone := make(chan struct{})
	defer func() { signal.Stop(sigs); close(relayDone) }()
	go r.relay(sigs, relayDone)

	if !r.noWait {
		t := time.AfterFunc(r.wait, func() { r.cutWait(errWaitOver) })
		defer t.Stop()
	}
	r.stopProgress = r.progress()
	lock, err := r.lk.Obtain(r.waitCtx, r.name, r.ttl)
	r.stopProgress()
	if err == nil {
		err = r.holdLock(lock)
	}
	return r.outcome(err)
}

// holdLock runs the command under lock and releases it. These are the steps
// of Locker.Do, spelled out because the command needs the Lock itself (its
// fencing token): keep the lock alive, run under its context, release, and
// report a loss.
func (r *runner) holdLock(lock *redlock.Lock) (err error) {
	defer func() {
		lost := lock.Err() // before Release: nil unless lost
		rerr := lock.Release(context.Background())
		switch {
		case lost != nil:
			err = errors.Join(err, lost)
		case err == nil:
			err = rerr
		}
	}()
	if err := lock.KeepAlive(); err != nil {
		return err
	}
	ctx, cancel := lock.Context(context.Background())
	defer cancel()
	return r.hold(ctx, lock)
}

// cutWait ends the wait for the lock, unless the command has started.
func (r *runner) cutWait(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started {
		r.waitCancel(cause)
	}
}

// relay forwards signals to the command's process group while it runs, and
// before that cuts the wait short.
func (r *runner) relay(sigs <-chan os.Signal, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case s := <-sigs:
			sig, _ := s.(syscall.Signal)
			if sig == syscall.SIGTSTP {
				// A stopped redlock would stop renewing the lock
				// while the command runs on: Ctrl-Z is refused.
				fmt.Fprintln(r.c.stderr, "redlock run: not stopping (Ctrl-Z): the lock would lapse while the command runs")
				continue
			}
			r.mu.Lock()
			switch {
			case !r.started:
				r.interruptedBy = sig
				r.waitCancel(errSignalled)
			case r.child != nil:
				_ = signalGroup(r.child, sig)
			default:
				// Obtained, not yet started: delivered at start.
				r.pendingSignal = sig
			}
			r.mu.Unlock()
		}
	}
}

// hold runs the command while the lock is held. ctx ends when the lock is
// lost (or would outlive its validity).
func (r *runner) hold(ctx context.Context, lock *redlock.Lock) error {
	r.mu.Lock()
	if r.waitCtx.Err() != nil {
		r.mu.Unlock()
		return errTooLate
	}
	r.started = true
	r.mu.Unlock()
	r.stopProgress()

	cmd := exec.Command(r.path, r.argv[1:]...)
	cmd.Args[0] = r.argv[0]
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if r.fenceEnv != "" {
		cmd.Env = append(os.Environ(), r.fenceEnv+"="+strconv.FormatUint(lock.Fence(), 10))
	}
	// In its own process group the command may not read the terminal (it
	// would be stopped, holding the lock): it reads /dev/null instead.
	if !isTerminal(os.Stdin) {
		cmd.Stdin = os.Stdin
	}
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		r.startErr = err
		return err
	}
	r.mu.Lock()
	r.child = cmd.Process
	if r.pendingSignal != 0 {
		_ = signalGroup(cmd.Process, r.pendingSignal)
	}
	r.mu.Unlock()

	exited := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		r.watch(ctx, cmd.Process, exited)
	}()
	_ = cmd.Wait() // its status is in ProcessState
	r.mu.Lock()
	r.child = nil
	r.mu.Unlock()
	close(exited)
	// When the lock was lost, the group may outlive its leader: the lock
	// is reported lost only once every process of it is gone.
	<-watched
	r.exitStatus = exitStatusOf(cmd.ProcessState)
	return nil
}

// watch stops the command's process group when ctx ends while it runs:
// SIGTERM, then SIGKILL if anything of the group is left after the grace
// period.
func (r *runner) watch(ctx context.Context, p *os.Process, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	case <-ctx.Done():
	}
	select {
	case <-exited:
		// It finished as the lock ended; holdLock reports the loss.
		return
	default:
	}
	cause := context.Cause(ctx)
	r.mu.Lock()
	r.lostCause = cause
	r.mu.Unlock()
	fmt.Fprintf(r.c.stderr, "redlock run: lock %q lost while the command ran: %v; sending SIGTERM to the command\n", r.name, cause)
	_ = signalGroup(p, syscall.SIGTERM)
	deadline := time.Now().Add(r.grace)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			if !groupAlive(p) {
				return
			}
		default:
		}
		time.Sleep(groupPoll)
	}
	select {
	case <-exited:
		if !groupAlive(p) {
			return
		}
	default:
	}
	_ = signalGroup(p, syscall.SIGKILL)
	fmt.Fprintf(r.c.stderr, "redlock run: the command was still running %v after SIGTERM; sent SIGKILL\n", r.grace)
}

// exitStatusOf returns a finished command's status as a shell reports it.
func exitStatusOf(ps *os.ProcessState) int {
	if ps == nil {
		return exitCannotExec
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitSignalBase + int(ws.Signal())
	}
	return ps.ExitCode()
}

// outcome turns the result of obtaining and holding the lock into run's exit status, with one line on
// stderr for every status but the command's own.
func (r *runner) outcome(err error) int {
	r.mu.Lock()
	started, lost, sig := r.started, r.lostCause != nil, r.interruptedBy
	r.mu.Unlock()
	switch {
	case r.startErr != nil:
		if errors.Is(r.startErr, os.ErrNotExist) {
			return r.cmd.fail(exitNotFound, "%v", r.startErr)
		}
		return r.cmd.fail(exitCannotExec, "%v", r.startErr)
	case lost:
		return r.cmd.fail(exitLost, "the command was stopped because the lock was lost; exiting %d", exitLost)
	case started && err == nil:
		return r.exitStatus
	case started && (errors.Is(err, redlock.ErrLost) || errors.Is(err, redlock.ErrNotHeld)):
		// The command finished, but the lock had ended by then or
		// before: it may not have run alone to its end.
		return r.cmd.fail(exitLost, "the command exited %d, but the lock did not hold to its end: %v; exiting %d", r.exitStatus, err, exitLost)
	case started:
		// It held to the end; only the release fell short, and the
		// keys it could not delete expire with the TTL.
		fmt.Fprintf(r.c.stderr, "redlock run: warning: releasing the lock: %v (its keys expire within %v)\n", err, r.ttl)
		return r.exitStatus
	case sig != 0:
		return r.cmd.fail(exitSignalBase+int(sig), "interrupted by %v while waiting for lock %q", sig, r.name)
	case errors.Is(err, redlock.ErrInvalid):
		return r.cmd.usageError("%v", err)
	}
	return r.cmd.fail(exitNotObtained, "%s", r.refusal(err))
}

// refusal says why the lock could not be obtained and, when another owner
// holds it, who and for how long.
func (r *runner) refusal(err error) string {
	how := "with --no-wait"
	if !r.noWait {
		how = fmt.Sprintf("within --wait %v", r.wait)
	}
	var qe *redlock.QuorumError
	switch {
	case errors.Is(err, redlock.ErrHeld) && errors.As(err, &qe):
		msg := fmt.Sprintf("lock %q not obtained %s: held by another owner", r.name, how)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if in, ierr := r.lk.Inspect(ctx, r.name); ierr == nil {
			if tok, n := in.Holder(); n > 0 {
				msg += fmt.Sprintf(" (token %s on %d of %d nodes)", short(tok), n, len(in.Nodes))
			}
		}
		if d, ok := qe.HolderTTL(); ok {
			msg += fmt.Sprintf(", expires in %v unless renewed", round(d))
		}
		return msg
	case errors.Is(err, redlock.ErrNoQuorum) && errors.As(err, &qe):
		return fmt.Sprintf("lock %q not obtained %s: no quorum of nodes reachable: %v", r.name, how, qe)
	case errors.Is(context.Cause(r.waitCtx), errWaitOver):
		return fmt.Sprintf("lock %q not obtained %s: %v", r.name, how, err)
	}
	return fmt.Sprintf("lock %q not obtained: %v", r.name, err)
}

// progress shows, on a terminal and without --quiet, one line saying who
// holds the lock while run waits for it. The returned function erases the
// line and stops; it may be called more than once.
func (r *runner) progress() func() {
	if r.quiet || r.c.stderr != io.Writer(os.Stderr) || !isTerminal(os.Stderr) {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		shown := false
		t := time.NewTimer(300 * time.Millisecond) // a quick obtain shows nothing
		defer t.Stop()
		for {
			select {
			case <-stop:
				if shown {
					fmt.Fprint(r.c.stderr, "\r\x1b[K")
				}
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			in, _ := r.lk.Inspect(ctx, r.name)
			cancel()
			select {
			case <-stop: // obtained meanwhile: the line would be stale
				continue
			default:
			}
			fmt.Fprint(r.c.stderr, "\r\x1b[K"+waitLine(r.name, in, time.Since(start)))
			shown = true
			t.Reset(500 * time.Millisecond)
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop); <-done }) }
}

// waitLine is the progress line: who holds the lock and for how long.
func waitLine(name string, in redlock.Inspection, waited time.Duration) string {
	s := fmt.Sprintf("redlock: waiting for lock %q", name)
	tok, n := in.Holder()
	switch {
	case in.Held():
		s += fmt.Sprintf(": held by %s on %d of %d nodes", short(tok), n, len(in.Nodes))
		if d, ok := in.HolderTTL(); ok {
			s += fmt.Sprintf(", expires in %v unless renewed", d.Round(100*time.Millisecond))
		}
	case in.Settled():
		s += ": not held on a quorum, retrying"
	default:
		answered := 0
		for _, st := range in.Nodes {
			if st.Err == nil {
				answered++
			}
		}
		s += fmt.Sprintf(": %d of %d nodes answer", answered, len(in.Nodes))
	}
	return s + fmt.Sprintf(" (waited %v)", waited.Round(time.Second))
}
