package redlock

import (
	"container/heap"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
)

// renewBatch caps the keys sent to a node in one script call.
const renewBatch = 256

// KeepAliveOption limits automatic renewal, so that a hung job cannot hold a
// lock forever.
type KeepAliveOption func(*keepAlive)

// WithMaxHold stops renewing once another extension would carry the lock
// past d after it was obtained; the lock then lapses at the end of its
// current validity, and ends with a cause matching ErrLost.
func WithMaxHold(d time.Duration) KeepAliveOption { return func(k *keepAlive) { k.maxHold = d } }

// WithMaxExtensions stops renewing after n automatic extensions; the lock
// then lapses at the end of its current validity.
func WithMaxExtensions(n int) KeepAliveOption { return func(k *keepAlive) { k.maxExtensions = n } }

// keepAlive is a lock's place in the renewer's queue.
type keepAlive struct {
	maxHold       time.Duration
	maxExtensions int
	extensions    int
	due           time.Time
	slack         time.Duration // renew this much early to share a round
	index         int           // in the queue; -1 when not queued
}

// KeepAlive renews the lock automatically, each time a third of its TTL has
// passed, until it is released or lost. Renewal is done by one goroutine per
// Locker that extends every due lock with one script call per node, so many
// kept-alive locks cost a few round trips per tick, not one each.
//
// If a renewal does not reach a quorum the lock ends at once with a cause
// matching ErrLost (see Done, Err, Context): the owner can no longer be sure
// it holds the lock, and learns it while the remaining validity still lets it
// stop cleanly. Whatever happens to the renewer, the lock also ends when its
// validity runs out.
//
// It fails with ErrNotHeld when the lock was released or lost, and with
// ErrInvalid for a negative limit.
func (l *Lock) KeepAlive(opts ...KeepAliveOption) error {
	k := &keepAlive{index: -1}
	for _, o := range opts {
		o(k)
	}
	if k.maxHold < 0 || k.maxExtensions < 0 {
		return invalidf("negative KeepAlive limit")
	}
	l.mu.Lock()
	if l.released || l.cause != nil || !l.lk.cfg.clock.Now().Before(l.validUntil) {
		l.mu.Unlock()
		return fmt.Errorf("redlock: keep alive %q: %w", l.name, ErrNotHeld)
	}
	if l.keep != nil {
		l.mu.Unlock()
		return nil
	}
	l.keep = k
	l.watchLocked()
	k.due, k.slack = l.renewDueLocked(), l.ttl/6
	l.mu.Unlock()
	return l.lk.renew.add(l)
}

// renewDueLocked returns when a third of the TTL has passed since the round
// that set the current validity started.
func (l *Lock) renewDueLocked() time.Time {
	started := l.validUntil.Add(-(l.ttl - l.lk.cfg.drift(l.ttl)))
	return started.Add(l.ttl / 3)
}

// renewer extends the Locker's kept-alive locks as they come due.
type renewer struct {
	lk   *Locker
	kick chan struct{}
	stop chan struct{}

	mu      sync.Mutex
	queue   renewQueue
	started bool
	stopped bool
}

func newRenewer(lk *Locker) *renewer {
	return &renewer{lk: lk, kick: make(chan struct{}, 1), stop: make(chan struct{})}
}

func (r *renewer) add(l *Lock) error {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return ErrClosed
	}
	if !r.started {
		r.started = true
		r.lk.bg.Go(func() error { r.loop(); return nil })
	}
	heap.Push(&r.queue, l)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return nil
}

func (r *renewer) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopped {
		r.stopped = true
		close(r.stop)
	}
}

func (r *renewer) loop() {
	c := r.lk.cfg.clock
	for {
		r.mu.Lock()
		var wait <-chan time.Time
		var stopTimer func() bool
		if r.queue.Len() > 0 {
			due := r.queue[0].keep.due
			for {
				// A timer is set for a duration, not an instant: if the
				// clock moved while it was being set, it would fire late
				// by that much. Set it again until the clock held still.
				now := c.Now()
				t := c.NewTimer(due.Sub(now))
				if c.Since(now) < time.Millisecond {
					wait, stopTimer = t.C(), t.Stop
					break
				}
				t.Stop()
			}
		}
		r.mu.Unlock()
		select {
		case <-wait:
		case <-r.kick:
		case <-r.stop:
			if stopTimer != nil {
				stopTimer()
			}
			return
		}
		if stopTimer != nil {
			stopTimer()
		}
		if batch := r.takeDue(); len(batch) > 0 {
			r.renew(batch)
		}
	}
}

// takeDue pops the locks that are due, or nearly (within a sixth of their
// TTL), so that locks due close together share one round.
func (r *renewer) takeDue() []*Lock {
	now := r.lk.cfg.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var batch []*Lock
	for r.queue.Len() > 0 {
		l := r.queue[0]
		if l.keep.due.Sub(now) > l.keep.slack {
			break
		}
		heap.Pop(&r.queue)
		batch = append(batch, l)
	}
	return batch
}

// renewItem is one lock in a renewal round.
type renewItem struct {
	l     *Lock
	ttl   time.Duration
	votes []NodeVote
	yes   int
	fail  int
}

// renew extends a batch of locks on every node and applies the outcome to
// each lock.
func (r *renewer) renew(batch []*Lock) {
	lk := r.lk
	c := lk.cfg.clock
	start := c.Now()
	items := make([]*renewItem, 0, len(batch))
	var timeout time.Duration
	for _, l := range batch {
		// Never wait for a Lock busy with the caller's own Release or
		// Extend (bounded by a node timeout, but one stuck lock must not
		// hold up every other renewal): look again shortly.
		if !l.mu.TryLock() {
			r.retryLater(l)
			continue
		}
		k := l.keep
		switch {
		case l.released || l.cause != nil:
		case k.maxExtensions > 0 && k.extensions >= k.maxExtensions:
			l.stopReason = fmt.Sprintf("renewal stopped after %d extensions (WithMaxExtensions)", k.extensions)
		case k.maxHold > 0 && start.Add(l.ttl-lk.cfg.drift(l.ttl)).After(l.acquiredAt.Add(k.maxHold)):
			l.stopReason = fmt.Sprintf("renewal stopped at the maximum hold time of %v (WithMaxHold)", k.maxHold)
		default:
			items = append(items, &renewItem{l: l, ttl: l.ttl, votes: make([]NodeVote, len(lk.nodes))})
			if t := lk.timeoutFor(l.ttl); timeout == 0 || t < timeout {
				timeout = t
			}
		}
		l.mu.Unlock()
	}
	if len(items) == 0 {
		return
	}
	keys := make([]string, len(items))
	args := make([]any, 0, 2*len(items))
	for i, it := range items {
		keys[i] = it.l.acq.keys[0]
		args = append(args, it.l.acq.token, strconv.FormatInt(it.ttl.Milliseconds(), 10))
	}
	ch, n, err := lk.fanout(context.Background(), nil, timeout, func(ctx context.Context, _ int, p pool.Pool) (any, error) {
		return extendMany(ctx, p, keys, args)
	}, nil, nil)
	if err != nil {
		return // closing
	}
	undecided := len(items)
	for got := 0; got < n && undecided > 0; got++ {
		rep := <-ch
		flags, _ := rep.val.([]bool)
		for i, it := range items {
			v := NodeVote{Addr: lk.nodes[rep.node].Addr(), Answered: true, Latency: rep.latency, Err: rep.err}
			v.Yes = rep.err == nil && flags[i]
			it.votes[rep.node] = v
			it.l.acq.gateVoted(rep.node, v.Yes)
			wasDecided := it.yes >= lk.quorum || len(lk.nodes)-it.fail < lk.quorum
			if v.Yes {
				it.yes++
			} else {
				it.fail++
			}
			if !wasDecided && (it.yes >= lk.quorum || len(lk.nodes)-it.fail < lk.quorum) {
				undecided--
			}
		}
	}
	elapsed := c.Since(start)
	for _, it := range items {
		l := it.l
		drift := lk.cfg.drift(it.ttl)
		if it.yes >= lk.quorum && elapsed < it.ttl-drift {
			l.renewed(start.Add(it.ttl-drift), r)
			continue
		}
		for i := range it.votes {
			if it.votes[i].Addr == "" {
				it.votes[i].Addr = lk.nodes[i].Addr()
			}
		}
		qe := &QuorumError{Op: "extend", Name: l.name, Quorum: lk.quorum, Votes: it.votes, Err: verdict(it.votes, lk.quorum, ErrNotHeld)}
		if it.yes >= lk.quorum {
			qe.Err = ErrExpired
		}
		l.end(fmt.Errorf("redlock: lock %q: %w: automatic renewal failed: %w", l.name, ErrLost, qe))
	}
}

// retryLater queues l again as soon as it is free, when it could not be
// looked at: a goroutine waits for the Lock instead of the renewer, so that
// the renewal is neither held up nor put off by a fixed delay that only the
// clock's advance ends (a caller reading TTL at the wrong moment could
// otherwise push it back again and again).
func (r *renewer) retryLater(l *Lock) {
	r.lk.bg.Go(func() error {
		l.mu.Lock() // waits for the Lock's holder to finish
		released := l.released
		l.mu.Unlock()
		if released {
			return nil
		}
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			return nil
		}
		l.keep.due = r.lk.cfg.clock.Now()
		heap.Push(&r.queue, l)
		r.mu.Unlock()
		select {
		case r.kick <- struct{}{}:
		default:
		}
		return nil
	})
}

// renewed applies a successful renewal and queues the lock again. It runs in
// its own goroutine when the Lock is busy, so the renewer never waits.
func (l *Lock) renewed(validUntil time.Time, r *renewer) {
	if !l.mu.TryLock() {
		r.lk.bg.Go(func() error { l.mu.Lock(); l.applyRenewal(validUntil, r); return nil })
		return
	}
	l.applyRenewal(validUntil, r)
}

// applyRenewal is renewed with l.mu held; it unlocks it.
func (l *Lock) applyRenewal(validUntil time.Time, r *renewer) {
	if l.released || l.cause != nil {
		l.mu.Unlock()
		return
	}
	l.validUntil = validUntil
	l.keep.extensions++
	l.keep.due, l.keep.slack = l.renewDueLocked(), l.ttl/6
	l.armExpiryLocked()
	l.mu.Unlock()
	r.lk.emit(Event{Kind: EventExtended, Name: l.name})
	r.mu.Lock()
	if !r.stopped {
		heap.Push(&r.queue, l)
	}
	r.mu.Unlock()
	// When the Lock was busy this runs after the renewer went back to
	// sleep, possibly with nothing else queued: wake it, or the lock would
	// never be renewed again.
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// extendMany runs ExtendMany on one node in chunks and returns one flag per
// key.
func extendMany(ctx context.Context, p pool.Pool, keys []string, args []any) (any, error) {
	flags := make([]bool, 0, len(keys))
	for lo := 0; lo < len(keys); lo += renewBatch {
		hi := min(lo+renewBatch, len(keys))
		reply, err := p.Eval(ctx, scripts.ExtendMany, keys[lo:hi], args[2*lo:2*hi]...)
		if err != nil {
			return nil, err
		}
		f, err := scripts.DecodeFlags(reply, hi-lo)
		if err != nil {
			return nil, err
		}
		flags = append(flags, f...)
	}
	return flags, nil
}

// renewQueue is a min-heap of locks by renewal due time.
type renewQueue []*Lock

func (q renewQueue) Len() int           { return len(q) }
func (q renewQueue) Less(i, j int) bool { return q[i].keep.due.Before(q[j].keep.due) }
func (q renewQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].keep.index, q[j].keep.index = i, j
}
func (q *renewQueue) Push(x any) {
	l := x.(*Lock)
	l.keep.index = len(*q)
	*q = append(*q, l)
}
func (q *renewQueue) Pop() any {
	old := *q
	l := old[len(old)-1]
	old[len(old)-1] = nil
	l.keep.index = -1
	*q = old[:len(old)-1]
	return l
}
