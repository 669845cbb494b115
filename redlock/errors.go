package redlock

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
)

// Sentinel errors. Every error returned by this package matches at most one
// of the first four with errors.Is; the caller's context error is matched as
// itself (errors.Is(err, context.DeadlineExceeded)), possibly together with
// the reason the last attempt failed.
var (
	// ErrHeld means the lock is held by another owner on enough nodes that a
	// quorum could not be obtained.
	ErrHeld = errors.New("lock is held by another owner")
	// ErrNoQuorum means too many nodes failed (down, hung, refusing) for a
	// quorum to be reached, whoever holds the lock.
	ErrNoQuorum = errors.New("no quorum of nodes reachable")
	// ErrExpired means a quorum was reached but so slowly that no validity
	// was left once elapsed time and clock drift were subtracted from the TTL.
	ErrExpired = errors.New("lock validity elapsed before the quorum answered")
	// ErrNotHeld is returned by Release and Extend when the lock is not held
	// by this owner on a quorum: it expired, was released, or was taken over.
	ErrNotHeld = errors.New("lock not held")
	// ErrWrongType is matched when a node holds the lock's key with a value
	// that is not a string, so it is not a lock of this library.
	ErrWrongType = pool.ErrWrongType
	// ErrClosed is returned by a Locker's methods after Close.
	ErrClosed = errors.New("locker closed")
	// ErrInvalid is matched by every error about bad input (name, TTL,
	// options, nodes).
	ErrInvalid = errors.New("invalid argument")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("redlock: %w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// NodeVote is what one node answered in one round (obtain, release, extend).
type NodeVote struct {
	// Addr is the node's host:port.
	Addr string
	// Answered is false when the round was decided before the node replied,
	// or when the node was not asked: a contended attempt asks one node
	// first, and no other when that node refuses.
	Answered bool
	// Yes is true when the node granted, released or extended the lock.
	Yes bool
	// HolderTTL is, for a refused obtain, the current holder's remaining time
	// on this node. It is negative when not known: the key has no expiry, or
	// the lock is promised to another waiter and this one, in the lock's turn
	// queue, did not read for how long (it is named when its turn comes).
	HolderTTL time.Duration
	// Discarded says why a yes-vote was not counted (the node is
	// quarantined after losing its data or a clock jump); Yes is then false.
	Discarded string
	// Fence is, for a fenced grant, the node's fence counter.
	Fence int64
	// Holder is, for a refused obtain, the first characters of the current
	// holder's token: equal values on two nodes mean the same owner.
	Holder string
	// Err is the node's error (network, timeout, error reply), if any.
	Err error
	// Latency is how long the node took to answer.
	Latency time.Duration
}

func (v NodeVote) String() string {
	switch {
	case !v.Answered:
		return v.Addr + ": no answer yet"
	case v.Err != nil:
		return fmt.Sprintf("%s: error after %s: %v", v.Addr, v.Latency.Round(time.Microsecond), v.Err)
	case v.Yes:
		return fmt.Sprintf("%s: yes in %s", v.Addr, v.Latency.Round(time.Microsecond))
	case v.Discarded != "":
		return fmt.Sprintf("%s: yes discarded, %s", v.Addr, v.Discarded)
	case v.Holder != "" && v.HolderTTL < 0:
		return fmt.Sprintf("%s: held by %s…", v.Addr, v.Holder)
	case v.Holder != "":
		return fmt.Sprintf("%s: held by %s… for %s", v.Addr, v.Holder, v.HolderTTL.Round(time.Millisecond))
	default:
		return fmt.Sprintf("%s: no in %s", v.Addr, v.Latency.Round(time.Microsecond))
	}
}

// QuorumError reports a round that did not reach a quorum, with every node's
// vote. Its Unwrap matches one of ErrHeld, ErrNoQuorum, ErrExpired or
// ErrNotHeld, and also ErrWrongType when a node reported a key of another type.
type QuorumError struct {
	Op     string // "obtain", "release" or "extend"
	Name   string // the lock's name
	Quorum int    // yes votes needed
	Votes  []NodeVote
	Err    error // the sentinel

	// gate is 1 + the index of the node that refused a gated attempt, whose
	// other nodes were not asked; 0 otherwise.
	gate int
}

func (e *QuorumError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "redlock: %s %q: %v (", e.Op, e.Name, e.Err)
	fmt.Fprintf(&b, "%d of %d yes, %d needed", e.yes(), len(e.Votes), e.Quorum)
	for _, v := range e.Votes {
		b.WriteString("; ")
		b.WriteString(v.String())
	}
	b.WriteString(")")
	return b.String()
}

// yes counts the nodes that voted yes.
func (e *QuorumError) yes() int {
	n := 0
	for _, v := range e.Votes {
		if v.Answered && v.Yes && v.Err == nil {
			n++
		}
	}
	return n
}

// contended reports whether the round shows contenders racing: it won some
// nodes while others refused, or the refusals name more than one owner. A
// round lost to one holder, or failed by errors and discarded votes, is not.
func (e *QuorumError) contended() bool {
	holders := map[string]bool{}
	refused := 0
	for _, v := range e.Votes {
		if v.Holder != "" {
			holders[v.Holder] = true
			refused++
		}
	}
	return len(holders) > 1 || (e.yes() > 0 && refused > 0)
}

// heldByOne returns how many nodes refused for the same holder, at most:
// when it reaches the quorum, one owner holds the lock.
func (e *QuorumError) heldByOne() int {
	best := 0
	for i, v := range e.Votes {
		if v.Holder == "" {
			continue
		}
		n := 0
		for _, u := range e.Votes[i:] {
			if u.Holder == v.Holder {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

// Unwrap returns the sentinel, plus ErrWrongType when a node reported it.
func (e *QuorumError) Unwrap() []error {
	errs := []error{e.Err}
	for _, v := range e.Votes {
		if v.Err != nil && errors.Is(v.Err, pool.ErrWrongType) {
			errs = append(errs, ErrWrongType)
			break
		}
	}
	return errs
}

// HolderTTL returns the time after which the current holder's key will have
// expired on enough nodes for a quorum to be free, as seen by this round, and
// false when the round does not tell (errors, keys with no expiry).
func (e *QuorumError) HolderTTL() (time.Duration, bool) {
	return e.freeAfter(false)
}

// freeAfter returns when the lock will be free as HolderTTL does, from each
// node's answer, or from the round's start when sinceStart is set (each
// node's TTL plus the time it took to answer): the time a waiter needs, as
// the clock may have moved while the round went on.
// grantedAt reports whether node i set this attempt's key: its vote was a
// yes, counted or discarded.
func (e *QuorumError) grantedAt(i int) bool {
	v := e.Votes[i]
	return v.Answered && v.Err == nil && (v.Yes || v.Discarded != "")
}

// promised reports a gate's refusal for a lock promised to another waiter
// (gate.go): it says when the promise ends, not when the lock frees.
func (e *QuorumError) promised() bool {
	return e.gate > 0 && strings.HasPrefix(e.Votes[e.gate-1].Holder, scripts.Promised)
}

func (e *QuorumError) freeAfter(sinceStart bool) (time.Duration, bool) {
	at := func(v NodeVote) time.Duration {
		if sinceStart {
			return v.HolderTTL + v.Latency
		}
		return v.HolderTTL
	}
	if e.gate > 0 {
		// Only the gate was asked: the lock cannot be had before it frees.
		if v := e.Votes[e.gate-1]; v.HolderTTL >= 0 {
			return at(v), true
		}
		return 0, false
	}
	free := make([]time.Duration, 0, len(e.Votes))
	for _, v := range e.Votes {
		switch {
		case !v.Answered || v.Err != nil:
		case v.Yes:
			free = append(free, 0)
		case v.HolderTTL >= 0:
			free = append(free, at(v))
		}
	}
	need := e.Quorum
	if len(free) < need {
		return 0, false
	}
	// Insertion sort: N is small.
	for i := 1; i < len(free); i++ {
		for j := i; j > 0 && free[j] < free[j-1]; j-- {
			free[j], free[j-1] = free[j-1], free[j]
		}
	}
	return free[need-1], true
}
