package redlock

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quorumlock/quorumlock/pool"
)

// A node that lets a call run out its node timeout (hung, cut off, or
// overloaded) is not asked again for silenceFor: rounds count it as failed
// at once, without spending a goroutine, a connection and a clean-up on it
// each time. So is a node that refuses connections (down, or restarting):
// each call to it would dial again, and each clean-up too. Once silenceFor
// has passed, one call goes through as a probe: an answer ends the pause,
// another timeout or refusal starts a new one. Skipping a node only takes a
// vote away; it never grants what a quorum would not.

// silenceFor is how long a node that timed out, or refused a connection, is
// skipped.
const silenceFor = time.Second

// silence is one node's pause.
type silence struct {
	until   atomic.Int64 // end of the pause, ns since the Locker's start; 0: none
	probing atomic.Bool  // a call is testing the node after a pause
	refused atomic.Bool  // the pause is for refused connections, not a timeout
	// failing is set while the node's last call failed other than by an
	// error reply or the caller's context (refused, reset, timed out): an
	// acquisition does not count on its vote when it decides how many
	// nodes whose release is on its way it can spare (releasing.go).
	failing atomic.Bool
	// answered is when the latest call that the node answered was sent,
	// ns since the Locker's start, to the millisecond.
	answered atomic.Int64
}

// skip reports whether a call to node i is to be skipped now. When the
// node's pause is over, the first caller is let through as the probe and
// the others are skipped until it is answered.
func (lk *Locker) skip(i int) bool {
	s := &lk.silent[i]
	until := s.until.Load()
	if until == 0 {
		return false
	}
	if lk.sinceStart() < until {
		return true
	}
	return !s.probing.CompareAndSwap(false, true)
}

// silenced reports whether node i is paused at now (ns since the Locker's
// start), without claiming the probe.
func (lk *Locker) silenced(i int, now int64) bool {
	until := lk.silent[i].until.Load()
	return until != 0 && now < until
}

// heard records how a call to node i, sent at sent (ns since the Locker's
// start), ended: a node timeout or a refused connection pauses the node; a
// call ended by its caller's context says nothing about the node (but lets
// another call probe it); anything else, an answer, ends the pause.
//
// A timeout or refusal does not pause a node that has answered a call sent
// after this one: the node works, and what failed was this call's way to it
// (a connection made while the node restarted, say). Pausing it then would
// take its vote from the rounds for a second for nothing. Nor does a
// timeout noticed long after it fell due (stalled): the client stood still,
// and would otherwise pause every node it had a call waiting on.
func (lk *Locker) heard(i int, err error, sent int64) {
	s := &lk.silent[i]
	if err == nil {
		if s.failing.Load() {
			s.failing.Store(false)
		}
		s.answeredAt(sent)
		if s.until.Load() != 0 {
			s.until.Store(0)
			s.probing.Store(false)
		}
		return
	}
	// Declared past the common case: errors.As makes them escape, and
	// each would cost every call an allocation.
	var reply *pool.ServerError
	answered := errors.As(err, &reply)
	if failing := !answered && !errors.Is(err, context.Canceled); failing != s.failing.Load() {
		s.failing.Store(failing)
	}
	if answered {
		s.answeredAt(sent)
	}
	var timeout errNodeTimeout
	timedOut := errors.As(err, &timeout)
	lost := timedOut || errors.Is(err, syscall.ECONNREFUSED)
	switch {
	case lost && sent < s.answered.Load():
		// Answered since: see above.
	case timedOut && lk.stalled(sent, timeout.timeout):
		// The timeout was noticed long after it fell due: this client
		// was stopped meanwhile (SIGSTOP, a debugger, a suspended VM),
		// not the node, which may have answered in time. It says nothing
		// about the node; the next call will.
		s.probing.Store(false)
	case lost:
		s.refused.Store(!errors.As(err, &timeout))
		s.until.Store(max(lk.sinceStart()+int64(silenceFor), 1))
		s.probing.Store(false)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		s.probing.Store(false)
	case s.until.Load() != 0:
		s.until.Store(0)
		s.probing.Store(false)
	}
}

// stallSlack is how late, at least, a node timeout must be noticed for the
// lateness to be the client's own: a stopped process, not a busy one, whose
// timers fire a few milliseconds late at worst.
const stallSlack = 50 * time.Millisecond

// stalled reports whether a call sent at sent (ns since the Locker's start)
// that ran out timeout ends so late that this client, not the node, stood
// still: later than its deadline by more than the timeout itself and
// stallSlack.
func (lk *Locker) stalled(sent int64, timeout time.Duration) bool {
	late := time.Duration(lk.sinceStart()-sent) - timeout
	return late > max(timeout, stallSlack)
}

// answeredAt records an answer to a call sent at sent. It is kept to the
// millisecond, so that a busy node's replies do not all write to it: a call
// lost within a millisecond of the last update pauses the node.
func (s *silence) answeredAt(sent int64) {
	if last := s.answered.Load(); sent > last+int64(time.Millisecond) {
		s.answered.CompareAndSwap(last, sent)
	}
}

// sinceStart is the Locker's clock reading as ns since the Locker was made.
func (lk *Locker) sinceStart() int64 {
	return int64(lk.cfg.clock.Since(lk.guard.origin))
}

// skipped returns the failure of a call skipped because node i is paused.
func (lk *Locker) skipped(i int) error {
	if lk.silent[i].refused.Load() {
		return errNodeDown{}
	}
	return errNodeSilent{}
}

// errNodeDown is the failure of a call skipped because its node recently
// refused a connection. It matches syscall.ECONNREFUSED, as that refusal
// does.
type errNodeDown struct{}

func (errNodeDown) Error() string {
	return "not asked: it refused a connection within the last " + silenceFor.String()
}

func (errNodeDown) Unwrap() error { return syscall.ECONNREFUSED }

// errNodeSilent is the failure of a call skipped because its node recently
// let a call run out the node timeout. It matches context.DeadlineExceeded,
// as that timeout does.
type errNodeSilent struct{}

func (errNodeSilent) Error() string {
	return "not asked: it let a call run out the node timeout within the last " + silenceFor.String()
}

func (errNodeSilent) Unwrap() error { return errNodeTimeout{} }

// Timeout reports true, as net errors do for timeouts.
func (errNodeSilent) Timeout() bool { return true }
