package redlock

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
)

// Lock is a lock obtained on a quorum of nodes. Its methods are safe for
// concurrent use; Release and Extend are serialised.
type Lock struct {
	lk   *Locker
	name string
	acq  *acquisition

	fence uint64

	mu         sync.Mutex
	ttl        time.Duration
	validUntil time.Time
	released   bool
	acquiredAt time.Time
	// chainStart is when the nodes granted the keys this Lock holds: a Lock
	// handed over inside the Locker keeps its predecessor's.
	chainStart time.Time

	// Lifetime (lifetime.go): why the lock ended, who waits for it.
	cause        error
	done         chan struct{}
	expiry       clock.Timer
	callbacks    map[int]func(error)
	nextCallback int
	stopReason   string // set when automatic renewal stopped on a limit

	// Automatic renewal (renew.go).
	keep *keepAlive
}

// Name returns the lock's name.
func (l *Lock) Name() string { return l.name }

// Token returns the random value that identifies this owner on the nodes.
func (l *Lock) Token() string { return l.acq.token }

// Fence returns the lock's fencing token, or 0 when the Locker was not
// created WithFencing. Tokens of later holders of any lock of the same key
// prefix on the same nodes are larger; pass it to the protected storage and
// have it reject writes carrying a token smaller than the largest it has seen.
func (l *Lock) Fence() uint64 { return l.fence }

// ValidUntil returns the instant, on the Locker's monotonic clock, until which
// the lock is held: the start of the round that obtained or last extended it,
// plus the TTL, minus the drift allowance. It is not a wall-clock time to send
// to another machine.
func (l *Lock) ValidUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.validUntil
}

// TTL returns the remaining validity: how long the caller may still act
// under the lock. It is zero or negative once the validity has elapsed.
func (l *Lock) TTL() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return 0
	}
	return l.validUntil.Sub(l.lk.cfg.clock.Now())
}

// Release deletes the lock's key on every node where it still holds this
// owner's token. It returns once a quorum has answered; the other nodes are
// cleaned up in the background, and the deletions go on even if ctx ends
// first. A node that had not yet answered the acquisition is released when
// it does, and that answer counts toward the quorum too.
//
// It returns nil when the lock was still valid and a quorum deleted its key.
// Otherwise the critical section may not have been exclusive to its end, and
// the error says why: ErrNotHeld (validity had elapsed, already released, or
// the key was gone or taken on too many nodes), ErrNoQuorum (too many nodes
// failed), or ctx's error.
//
// When another goroutine of the same Locker waits for the same lock, Release
// may hand the lock over to it instead (see WithoutLocalHandoff) and return
// nil: the nodes go on holding it, for the next owner.
func (l *Lock) Release(ctx context.Context) error {
	if l.handOff() {
		return nil
	}
	err := l.release(ctx)
	l.end(&releasedError{name: l.name})
	return err
}

// LocalHandoffWindow bounds how long a lock may pass from goroutine to
// goroutine of one Locker without being released on the nodes: after that, a
// release frees it for other processes too.
const LocalHandoffWindow = 100 * time.Millisecond

// handOff passes the lock to the first goroutine of this Locker in line for
// it, without a round trip: the keys on the nodes stay, and so does the
// validity. It does so only while at least half the waiter's TTL of validity
// is left, within LocalHandoffWindow of the grant on the nodes, and never
// with fencing (each owner must have a larger token).
func (l *Lock) handOff() bool {
	lk := l.lk
	if lk.cfg.fencing || lk.cfg.noHandoff {
		return false
	}
	l.mu.Lock()
	if l.released || l.cause != nil {
		l.mu.Unlock()
		return false
	}
	now := lk.cfg.clock.Now()
	left := l.validUntil.Sub(now)
	handed := lk.notify.handTo(l.acq.keys[0], func(w *waiter) bool {
		return left >= w.ttl/2 && now.Sub(l.chainStart) < min(w.ttl/2, LocalHandoffWindow)
	}, func(w *waiter) *Lock {
		return &Lock{lk: lk, name: l.name, acq: l.acq, ttl: w.ttl, acquiredAt: now, chainStart: l.chainStart, validUntil: l.validUntil}
	})
	if !handed {
		l.mu.Unlock()
		return false
	}
	l.released = true
	l.mu.Unlock()
	l.end(&releasedError{name: l.name, handed: true})
	lk.emit(Event{Kind: EventReleased, Name: l.name, Detail: "handed over to a waiter of this Locker"})
	lk.emit(Event{Kind: EventObtained, Name: l.name, Detail: "handed over by a holder of this Locker"})
	return true
}

func (l *Lock) release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return fmt.Errorf("redlock: release %q: %w: already released", l.name, ErrNotHeld)
	}
	l.released = true
	lk := l.lk
	lk.hot.released(l.acq.keys[0], l.acq.token[:scripts.HolderIDLen])
	late := lk.cfg.clock.Since(l.validUntil)
	// The nodes still to answer the acquisition release themselves when
	// they do (releaseNow), and their answers count here too: a quorum may
	// hold the key only with them.
	answered, refused, stragglers := l.acq.abandonForRelease()
	ch, n, err := lk.fanout(context.WithoutCancel(ctx), answered, l.acq.timeout, l.acq.release, l.acq.oweFailed, nil)
	if err != nil {
		return err
	}
	rd := lk.newRound(ch, n+len(refused)+stragglers)
	for _, i := range refused {
		rd.add(notReleased(i), classifyFlag)
		rd.got++
	}
	rd.ch2 = l.acq.late
	cerr := rd.collect(ctx, classifyFlag)
	votes, tally := rd.votes, rd.tally
	if cerr == nil && !tally.Reached() {
		// The nodes failed because the caller's deadline passed: say so.
		cerr = ctxEnded(ctx)
	}
	switch {
	case cerr != nil:
		return contextError("release", l.name, cerr, nil)
	case late >= 0:
		return fmt.Errorf("redlock: release %q: %w: its validity had elapsed %v before the release", l.name, ErrNotHeld, late)
	case tally.Reached():
		lk.notify.released(l.acq.keys[0])
		lk.emit(Event{Kind: EventReleased, Name: l.name})
		return nil
	}
	return &QuorumError{Op: "release", Name: l.name, Quorum: lk.quorum, Votes: votes, Err: verdict(votes, lk.quorum, ErrNotHeld)}
}

// Extend resets the lock's time to live to ttl on every node where it still
// holds this owner's token. When a quorum agrees, the new validity is ttl
// minus the drift allowance, counted from the start of the extension.
//
// It fails with ErrNotHeld when the lock was released or its validity has
// already elapsed (it is never revived), and otherwise with a *QuorumError
// when no quorum extended it (ErrNotHeld, ErrNoQuorum or ErrExpired) or with
// ctx's error. On failure the validity is unchanged: the lock stays held
// until ValidUntil, and no later.
func (l *Lock) Extend(ctx context.Context, ttl time.Duration) error {
	lk := l.lk
	ttl, err := lk.checkTTL(ttl)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return fmt.Errorf("redlock: extend %q: %w: released", l.name, ErrNotHeld)
	}
	start := lk.cfg.clock.Now()
	if late := start.Sub(l.validUntil); late >= 0 {
		return fmt.Errorf("redlock: extend %q: %w: its validity elapsed %v ago", l.name, ErrNotHeld, late)
	}
	ttlms := strconv.FormatInt(ttl.Milliseconds(), 10)
	// Every node, stragglers of the acquisition included: the script only
	// extends a key holding our token, wherever it landed.
	ch, n, err := lk.fanout(ctx, nil, lk.timeoutFor(ttl), func(ctx context.Context, _ int, p pool.Pool) (any, error) {
		return p.Eval(ctx, scripts.Extend, l.acq.keys, l.acq.token, ttlms)
	}, nil, nil)
	if err != nil {
		return err
	}
	votes, tally, cerr := lk.collect(ctx, ch, n, classifyFlag)
	for i, v := range votes {
		if v.Answered {
			l.acq.gateVoted(i, v.Yes)
		}
	}
	if cerr == nil && !tally.Reached() {
		cerr = ctxEnded(ctx)
	}
	if cerr != nil {
		return contextError("extend", l.name, cerr, nil)
	}
	if !tally.Reached() {
		return &QuorumError{Op: "extend", Name: l.name, Quorum: lk.quorum, Votes: votes, Err: verdict(votes, lk.quorum, ErrNotHeld)}
	}
	drift := lk.cfg.drift(ttl)
	if lk.cfg.clock.Since(start) >= ttl-drift {
		return &QuorumError{Op: "extend", Name: l.name, Quorum: lk.quorum, Votes: votes, Err: ErrExpired}
	}
	l.ttl, l.validUntil = ttl, start.Add(ttl-drift)
	l.armExpiryLocked()
	lk.emit(Event{Kind: EventExtended, Name: l.name, Latency: lk.cfg.clock.Since(start)})
	return nil
}

func classifyFlag(r reply) NodeVote {
	if r.err != nil {
		return NodeVote{Err: r.err}
	}
	ok, err := scripts.DecodeFlag(r.val)
	if err != nil {
		return NodeVote{Err: err}
	}
	return NodeVote{Yes: ok}
}
