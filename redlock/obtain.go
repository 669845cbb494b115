package redlock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
)

// Obtain acquires the lock called name for ttl, retrying as the Locker's
// Backoff says until it succeeds, the Backoff gives up, or ctx ends. With a
// context that never ends and the default Backoff it blocks until the lock is
// free, like sync.Mutex.Lock.
//
// On success the Lock is valid until Lock.ValidUntil: ttl minus the time the
// quorum took to answer, minus the drift allowance. The caller must finish its
// critical section (or Extend) before then.
//
// Errors: ErrInvalid for a bad name or ttl; when ctx ends, an error matching
// ctx.Err() and, when there was one, the reason the last attempt failed; when
// the Backoff gives up or a node holds the key with a value of another type
// (ErrWrongType), the last attempt's *QuorumError (ErrHeld, ErrNoQuorum or
// ErrExpired). Every failed attempt is released on every node, in the
// background, even when ctx has ended.
func (lk *Locker) Obtain(ctx context.Context, name string, ttl time.Duration) (*Lock, error) {
	return lk.obtain(ctx, name, ttl, true)
}

// TryObtain makes exactly one attempt to acquire the lock called name for
// ttl: it returns at once with an error matching ErrHeld when another owner
// has it. Errors are those of Obtain.
func (lk *Locker) TryObtain(ctx context.Context, name string, ttl time.Duration) (*Lock, error) {
	return lk.obtain(ctx, name, ttl, false)
}

func (lk *Locker) obtain(ctx context.Context, name string, ttl time.Duration, retry bool) (*Lock, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	ttl, err := lk.checkTTL(ttl)
	if err != nil {
		return nil, err
	}
	key := lk.key(name)
	lk.guard.used(ttl)
	lk.checkOnce()
	var last error
	var w *waiter // in line for release notices, after the first failure
	var obtained bool
	defer func() {
		if w == nil {
			return
		}
		orphan, leave := lk.notify.unregister(w, obtained)
		if orphan != nil {
			// Handed over just as this caller gave up: pass it on.
			_ = orphan.Release(context.WithoutCancel(ctx))
		}
		if leave {
			lk.leaveQueue(key, lk.timeoutFor(ttl))
		}
	}()
	splits := 0       // consecutive attempts that won some nodes but no quorum
	timedOut := false // the last wait ended by its timer, not by a notice
	waiting, subscribed := false, false
	if retry {
		waiting, subscribed = lk.notify.lookup(key)
	}
	if waiting {
		// Others of this Locker are in line: queue behind them instead of
		// racing the one a release is about to wake.
		if w = lk.notify.register(key, ttl); w != nil {
			wait, _ := lk.backoff(w, 1)
			woken, handed, err := lk.wait(ctx, w, wait)
			timedOut = !woken
			if err != nil {
				return nil, contextError("obtain", name, err, nil)
			}
			if handed != nil {
				obtained = true
				return handed, nil
			}
		}
	} else if retry && (subscribed || lk.hot.hot(key, lk.cfg.clock.Now())) {
		// Likely to wait: get in line before the first attempt, so that a
		// release during it is heard and the attempt can take a turn in
		// the gate's queue.
		w = lk.notify.register(key, ttl)
	}
	resubscribed := false // tried again at once after the subscription came up
	rejoined := false     // tried again at once when the gate became audible
	viaGate := false      // the next attempt goes through the gate, whatever woke it
	for failures := 1; ; failures++ {
		if err := ctx.Err(); err != nil {
			return nil, contextError("obtain", name, err, last)
		}
		turn, heard, enqueue := false, false, false
		if w != nil {
			turn = lk.notify.rearm(w)
			heard = lk.notify.live(w)
			enqueue = retry && lk.notify.hearsGate(w)
		}
		var onGate func(refused, granted bool) // the gate's answer, whenever it comes
		if enqueue {
			seq := lk.notify.joining(w)
			onGate = func(refused, granted bool) { lk.notify.gateAnswered(w, seq, refused, granted) }
		}
		began := lk.cfg.clock.Now()
		// A contended attempt goes through the gate (gate.go), unless it
		// follows a wait that no notice ended: then the gate's refusals may
		// come from a stale key the rest of the quorum no longer has, and
		// every node is asked. A single attempt asks every node too, and
		// so does the waiter the gate named: the lock is promised to it
		// there, and the last holder's releases left for the other nodes
		// before the one to the gate (answeredLocked).
		gated := retry && (!timedOut || viaGate) && !turn && lk.hot.hot(key, began)
		viaGate = false
		l, err := lk.attempt(ctx, name, key, ttl, gated, turn, onGate)
		took := lk.cfg.clock.Since(began)
		if err == nil {
			obtained = true
			return l, nil
		}
		if cerr := ctxEnded(ctx); cerr != nil {
			// Report why this attempt failed, unless the context cut it
			// short (its nodes then fail for want of time, which says
			// nothing about the lock) and an earlier attempt tells more.
			if !errors.Is(err, cerr) && (last == nil || !errors.Is(err, ErrNoQuorum)) {
				last = err
			}
			return nil, contextError("obtain", name, cerr, last)
		}
		last = err
		if !retry || errors.Is(err, ErrWrongType) || errors.Is(err, ErrClosed) {
			return nil, err
		}
		wait, again := lk.backoff(w, failures)
		if !again {
			return nil, err
		}
		if w == nil {
			w = lk.notify.register(key, ttl)
		}
		if w != nil && !heard && !resubscribed {
			// Once a quorum of nodes confirmed the subscription, try again
			// at once: a release before that was not heard.
			resubscribed = true
			lk.notify.awaitReady(ctx, w, lk.timeoutFor(ttl))
			continue
		}
		ownPolicy := lk.cfg.backoff == nil
		if ownPolicy && w != nil && !enqueue && !rejoined && lk.notify.hearsGate(w) {
			// The gate became audible during the attempt, which could not
			// take a place in its queue: try again at once, taking one.
			rejoined = true
			continue
		}
		var qe *QuorumError
		isQE := errors.As(err, &qe)
		if ownPolicy && enqueue && !lk.notify.isQueued(w) && !(isQE && qe.grantedAt(lk.gate(key))) && lk.notify.hearsGate(w) {
			// The gate did not queue this waiter, nor grant it (it failed,
			// or did not answer), yet it is up: no turn will name it, and
			// the owner's release may be announced by the gate alone. Poll,
			// through the gate, which queues it once it refuses. (An owner
			// that holds the lock without the gate announces its release
			// on the other nodes; so does one whose gate is down.)
			poll, _ := fallbackBackoff.Next(failures)
			wait = min(wait, poll)
			viaGate = true
		}
		if isQE {
			// A promise to another waiter says when the lock may be free
			// again; a waiter in the queue is named instead.
			if free, ok := qe.freeAfter(true); ok && (!qe.promised() || !enqueue) {
				// The holder's TTLs were read during the attempt: count
				// from its start, not from now.
				free = max(free-took, 0)
				if free+time.Millisecond < wait {
					wait = free + time.Millisecond
				}
			}
			if qe.contended() && qe.heldByOne() < lk.quorum {
				// No single owner holds a quorum: contenders split the
				// votes, and each cleans up at once, so the lock is about to
				// be free with no release to announce it. Try again after a
				// random pause, longer the more splits in a row, so that
				// one contender gets ahead of the others. The pause scales
				// with how long the round took: when silent nodes make every
				// round last until the node timeout, all contenders' rounds
				// end together, and only pauses of that order separate them.
				splits++
				spread := (took + 200*time.Microsecond) << min(splits, 5)
				wait = min(wait, between(50*time.Microsecond, spread))
			} else {
				splits = 0
			}
		}
		woken, handed, err := lk.wait(ctx, w, wait)
		if err != nil {
			return nil, contextError("obtain", name, err, last)
		}
		if handed != nil {
			obtained = true
			return handed, nil
		}
		timedOut = !woken
	}
}

// backoff returns the wait after a failed attempt: the configured Backoff's,
// or by default SafetyPoll while w hears release notices from a quorum and
// the fallback backoff otherwise.
func (lk *Locker) backoff(w *waiter, failures int) (time.Duration, bool) {
	if lk.cfg.backoff != nil {
		return lk.cfg.backoff.Next(failures)
	}
	if w != nil && lk.notify.live(w) {
		return SafetyPoll, true
	}
	return fallbackBackoff.Next(failures)
}

// wait sleeps d, or until w is woken by a release notice or handed a lock,
// or ctx ends. It reports whether a notice woke it, and the lock handed over.
func (lk *Locker) wait(ctx context.Context, w *waiter, d time.Duration) (bool, *Lock, error) {
	if w == nil {
		return false, nil, clock.Sleep(ctx, lk.cfg.clock, d)
	}
	t := lk.cfg.clock.NewTimer(d)
	defer t.Stop()
	select {
	case l := <-w.handoff:
		return false, l, nil
	case <-w.wake:
		return true, nil, nil
	case <-t.C():
		return false, nil, nil
	case <-ctx.Done():
		return false, nil, ctx.Err()
	}
}

// contextError reports that ctx ended, with the last failure if any.
func contextError(op, name string, ctxErr, last error) error {
	if last == nil {
		return fmt.Errorf("redlock: %s %q: %w", op, name, ctxErr)
	}
	return fmt.Errorf("redlock: %s %q: %w; last attempt: %w", op, name, ctxErr, last)
}

// attempt is one round of acquire calls to every node; a gated attempt
// asks the lock's gate first (see gate.go). With onGate set, the call to the
// gate asks to join the lock's turn queue if refused, and onGate learns from
// the gate's answer, even one that comes after the round was decided,
// whether it did, and whether the gate granted the lock.
func (lk *Locker) attempt(ctx context.Context, name, key string, ttl time.Duration, gated, turn bool, onGate func(refused, granted bool)) (*Lock, error) {
	g := lk.gate(key)
	n := len(lk.nodes)
	flags := make([]bool, 4*n) // one allocation for the four sets
	a := &acquisition{
		lk:       lk,
		keys:     []string{key},
		queue:    lk.queueKey(key),
		gate:     g,
		token:    newToken(),
		timeout:  lk.timeoutFor(ttl),
		asked:    flags[:n:n],
		answered: flags[n : 2*n : 2*n],
		refused:  flags[2*n : 3*n : 3*n],
		replied:  flags[3*n:],
	}
	a.tokenArg = []any{a.token}
	a.quietArg = []any{a.tokenArg[0], "0"}
	a.turnKeys = []string{key, a.queue}
	ttlms := strconv.FormatInt(ttl.Milliseconds(), 10)
	script, keys := scripts.Acquire, []string{key, lk.marker}
	if lk.cfg.fencing {
		script, keys = scripts.AcquireFenced, append(keys, lk.cfg.fenceKey())
	}
	start := lk.cfg.clock.Now()
	args := []any{a.tokenArg[0], ttlms} // shared by every node's call
	// A waiter that will hear the gate's notices takes its turn in the
	// gate's queue when refused there (see gate.go).
	//
	// Any attempt names this Locker to the gate: a lock promised to it
	// there is its own, whichever of its goroutines asks.
	join := any("0")
	if onGate != nil {
		join = lk.idArgs[1]
	}
	gateKeys := append(keys[:len(keys):len(keys)], a.queue)
	gateArgs := []any{args[0], args[1], lk.idArgs[0], join}
	// A lock not known to be contended is likely free: where the pool can
	// pipeline, ask with plain commands, which cost a node far less than a
	// script, and run the script only when they do not settle the call
	// (scripts.FreeAcquire).
	var (
		free  []pool.Cmd
		avoid uint64
	)
	switch {
	case lk.cfg.fencing || gated:
	case turn:
		// The gate named this Locker: the last holder released the other
		// nodes before the gate, and they are likely free. The gate keeps
		// the promise, which only the script takes.
		free = scripts.FreeAcquire(key, lk.marker, args[0], args[1])
	case onGate == nil && !lk.hot.hot(key, start):
		free = scripts.FreeAcquire(key, lk.marker, args[0], args[1])
		avoid = lk.avoidReleasing(key)
	}
	acquire := func(ctx context.Context, i int, p pool.Pool) (any, error) {
		if pp, ok := p.(pool.Pipeliner); ok && free != nil && !(turn && i == g) {
			replies, err := pp.Pipeline(ctx, free)
			if err != nil {
				return nil, err
			}
			if ar, ok := scripts.DecodeFreeAcquire(replies); ok {
				return ar, nil
			}
		}
		if i == g {
			return p.Eval(ctx, script, gateKeys, gateArgs...)
		}
		return p.Eval(ctx, script, keys, args...)
	}
	settle := func(r *reply) func() {
		// Every reply, stragglers' included, tells the guard about its node.
		lk.judgeAcquire(r)
		if r.node == g {
			j, _ := r.val.(judgedAcquire)
			granted := r.err == nil && j.reply.Granted
			a.gateHeld.Store(granted)
			if onGate != nil {
				onGate(!granted && r.err == nil && j.reply.Holder != "", granted)
			}
		}
		then := a.settle(r)
		if then != nil && r.node == g {
			// A straggler's clean-up on the gate.
			return func() { then(); lk.notify.gateCleaned(key) }
		}
		return then
	}
	classify := func(r reply) NodeVote { return lk.classifyAcquire(name, r) }
	var (
		rd      *round
		cerr    error
		refused bool
	)
	if gated && len(lk.nodes) > 1 {
		rd, refused, cerr = lk.gatedRound(ctx, key, a, acquire, settle, classify)
		if rd == nil {
			return nil, cerr
		}
	} else {
		// A lagging node is spared (lag.go), but not the gate when this
		// attempt takes a turn in its queue; so is a node this Locker's
		// last release of the lock has not reached (releasing.go).
		a.asking(nil)
		ch, n, err := lk.fanout(ctx, nil, a.timeout, acquire, settle, lk.sparing(avoid, onGate == nil))
		if err != nil {
			return nil, err
		}
		rd = lk.newRound(ch, n)
	}
	if cerr == nil && !refused {
		cerr = rd.collect(ctx, classify)
	}
	// A quorum reached with the vote of a node that lost its data is no
	// quorum: now that more nodes have answered, judge every yes again, and
	// read on if some are discarded.
	for cerr == nil && rd.tally.Reached() && lk.guard.recheck(name, rd, lk.cfg.clock.Now()) > 0 {
		cerr = rd.collect(ctx, classify)
	}
	if !refused {
		// A gate's refusal alone does not keep the lock marked contended:
		// at least once per hotFor, an attempt asks every node, and sees
		// whether the cluster can still give anyone a quorum.
		lk.noteContention(key, rd.votes)
	}
	votes, tally := rd.votes, rd.tally
	var err error
	switch {
	case cerr != nil:
		err = cerr
	case refused:
		// The gate refused: the lock is held, and the other nodes were
		// not asked.
		err = &QuorumError{Op: "obtain", Name: name, Quorum: lk.quorum, Votes: votes, Err: ErrHeld, gate: 1 + g}
	case tally.Reached():
		var fence int64
		if lk.cfg.fencing {
			fence, err = lk.settleFence(ctx, name, []string{key, lk.cfg.fenceKey()}, a, votes)
			if err != nil {
				break
			}
		}
		drift := lk.cfg.drift(ttl)
		if elapsed := lk.cfg.clock.Since(start); elapsed < ttl-drift {
			lk.emit(Event{Kind: EventObtained, Name: name, Latency: elapsed})
			return &Lock{lk: lk, name: name, acq: a, ttl: ttl, fence: uint64(fence), acquiredAt: start, chainStart: start, validUntil: start.Add(ttl - drift)}, nil
		}
		err = &QuorumError{Op: "obtain", Name: name, Quorum: lk.quorum, Votes: votes, Err: ErrExpired}
	default:
		err = &QuorumError{Op: "obtain", Name: name, Quorum: lk.quorum, Votes: votes, Err: verdict(votes, lk.quorum, ErrHeld)}
		if errors.Is(err, ErrNoQuorum) {
			// Too few votes: the next attempt asks the lagging nodes too.
			for i, v := range votes {
				if _, ok := v.Err.(errNodeLagging); ok {
					lk.unspare(i)
				}
			}
		}
	}
	lk.emit(Event{Kind: EventObtainFailed, Name: name, Err: err})
	// Clean up every node that may hold our key: all but those that refused.
	// The replies are not awaited: the caller learns of the failure now and
	// each straggler is cleaned up as soon as it answers.
	if dirty := a.abandon(); len(dirty) > 0 {
		lk.hot.released(key, a.token[:scripts.HolderIDLen])
		if votes[g].Yes {
			lk.notify.cleaningGate(key)
		}
		cleaned := func(r *reply) func() {
			a.oweFailed(r)
			if r.node == g {
				lk.notify.gateCleaned(key)
			}
			return nil
		}
		if _, _, ferr := lk.fanout(context.WithoutCancel(ctx), dirty, a.timeout, a.cleanup, cleaned, nil); ferr != nil {
			// Close has begun and starts no more background calls: clean
			// up here, bounded by the node timeout.
			var wg sync.WaitGroup
			for _, i := range dirty {
				wg.Add(1)
				go func() { defer wg.Done(); a.releaseNow(i) }()
			}
			wg.Wait()
		}
	}
	return nil, err
}

// gatedRound asks key's gate for the lock, and the other nodes once the
// gate has granted it, failed, or stayed silent for gateWait; the replies
// count in one round. refused reports that the gate refused: the other nodes
// are not asked. rd is nil when no call was made (the Locker is closed); an
// error with rd set (the caller's context ended, or Close began before the
// other nodes were asked) leaves the attempt to be cleaned up.
func (lk *Locker) gatedRound(ctx context.Context, key string, a *acquisition, op nodeOp, settle func(*reply) func(), classify func(reply) NodeVote) (rd *round, refused bool, err error) {
	g := lk.gate(key)
	a.asking([]int{g})
	first, _, err := lk.fanout(ctx, []int{g}, a.timeout, op, settle, nil)
	if err != nil {
		return nil, false, err
	}
	rd = lk.newRound(first, len(lk.nodes))
	t := lk.cfg.clock.NewTimer(lk.gateWait(g, a.timeout))
	defer t.Stop()
	select {
	case r := <-first:
		rd.add(r, classify)
		rd.got++
		if v := rd.votes[g]; v.Err == nil && !v.Yes && v.Discarded == "" {
			return rd, true, nil
		}
	case <-t.C():
	case <-ctx.Done():
		return rd, false, ctx.Err()
	}
	others := make([]int, 0, len(lk.nodes)-1)
	for i := range lk.nodes {
		if i != g {
			others = append(others, i)
		}
	}
	a.asking(others)
	rest, _, err := lk.fanout(ctx, others, a.timeout, op, settle, lk.sparing(0, true))
	if err != nil {
		return rd, false, err
	}
	rd.ch2 = rest
	return rd, false, nil
}

// judgedAcquire is an acquire reply decoded and judged by the guard.
type judgedAcquire struct {
	reply   scripts.AcquireReply
	discard string // why a yes must not count
}

// judgeAcquire decodes r in place and shows it to the guard; it runs in the
// node's goroutine, so that late replies are judged too.
func (lk *Locker) judgeAcquire(r *reply) {
	if r.err != nil {
		return
	}
	ar, ok := r.val.(scripts.AcquireReply) // decoded already (FreeAcquire)
	if !ok {
		var err error
		if ar, err = scripts.DecodeAcquire(r.val); err != nil {
			r.val, r.err = nil, err
			return
		}
	}
	// Judged at the moment the reply was read, the end of r.latency (which
	// counts from its own fan-out's start, for a gated attempt's other
	// nodes later than the attempt's): a reading taken now could be late
	// by a pause of this goroutine, and make the node's clock look as if
	// it had jumped.
	r.val = judgedAcquire{reply: ar, discard: lk.guard.judge(r.node, ar, r.at, r.latency)}
}

// classifyAcquire turns a judged acquire reply into its vote, discarding the
// yes of a quarantined node.
func (lk *Locker) classifyAcquire(name string, r reply) NodeVote {
	addr := lk.nodes[r.node].Addr()
	if r.err != nil {
		switch r.err.(type) {
		case errNodeLagging, errNodeReleasing: // spared, not failed
		default:
			lk.emit(Event{Kind: EventNodeError, Name: name, Node: addr, Latency: r.latency, Err: r.err})
		}
		return NodeVote{Err: r.err}
	}
	j, _ := r.val.(judgedAcquire)
	ar := j.reply
	v := NodeVote{Yes: ar.Granted, Fence: ar.Fence, HolderTTL: time.Duration(ar.HolderTTLms) * time.Millisecond, Holder: ar.Holder}
	if j.discard != "" && v.Yes {
		v.Yes, v.Discarded = false, j.discard
		lk.emit(Event{Kind: EventVoteDiscarded, Name: name, Node: addr, Detail: j.discard})
	}
	return v
}

// settleFence returns the fencing token of a granted attempt: the largest
// counter among the yes votes. Unless every yes vote already reports it, it
// is first written to the nodes, and a quorum of nodes that still hold our
// key must confirm it, so that any later quorum meets a counter at least as
// large.
func (lk *Locker) settleFence(ctx context.Context, name string, keys []string, a *acquisition, votes []NodeVote) (int64, error) {
	var fence int64
	for _, v := range votes {
		if v.Answered && v.Yes {
			fence = max(fence, v.Fence)
		}
	}
	agreed := 0
	for _, v := range votes {
		if v.Answered && v.Yes && v.Fence == fence {
			agreed++
		}
	}
	if agreed >= lk.quorum {
		return fence, nil
	}
	arg := strconv.FormatInt(fence, 10)
	ch, n, err := lk.fanout(ctx, nil, a.timeout, func(ctx context.Context, _ int, p pool.Pool) (any, error) {
		return p.Eval(ctx, scripts.RaiseFence, keys, a.token, arg)
	}, nil, nil)
	if err != nil {
		return 0, err
	}
	raised, tally, cerr := lk.collect(ctx, ch, n, classifyFlag)
	if cerr != nil {
		return 0, cerr
	}
	if !tally.Reached() {
		return 0, &QuorumError{Op: "obtain (fence)", Name: name, Quorum: lk.quorum, Votes: raised, Err: verdict(raised, lk.quorum, ErrExpired)}
	}
	return fence, nil
}

// acquisition is the per-node state of one attempt's keys: which nodes have
// answered the acquire call, and whether the attempt was abandoned (failed,
// or its lock released), in which case every node that may hold the key must
// be cleaned up as soon as it has answered. A node is cleaned up exactly
// once: by whoever abandons the attempt if it had answered by then, else by
// its own goroutine. A node that refused holds no key of the attempt, and
// is never called again: what its release would answer is known.
type acquisition struct {
	lk      *Locker
	keys    []string
	queue   string // the lock's turn queue, kept on its gate node
	gate    int
	token   string
	timeout time.Duration
	// The release calls' arguments, made once for every node: the token
	// boxed as a command argument, with the flag that leaves the notice to
	// the gate, and the gate's keys.
	tokenArg []any
	quietArg []any
	turnKeys []string
	// gateHeld is set while the gate is known to hold this attempt's key:
	// its release there will announce it (ReleaseTurn), and the other
	// nodes release without a notice of their own.
	gateHeld atomic.Bool
	// unreleased is, once the attempt is abandoned, the set of nodes that
	// may hold its key and whose release has not answered yet (nodes past
	// the 64th are not tracked): see releasing.go.
	unreleased atomic.Uint64

	mu        sync.Mutex
	asked     []bool // an acquire call was set off, or skipped
	answered  []bool // answered, and may hold the key
	refused   []bool // answered that another holds the key, or refused the connection
	replied   []bool // a reply was delivered, a skipped call's included
	abandoned bool
	// late receives the releases of the nodes that had not answered when
	// the lock was released (releaseNow): Release counts them too.
	late chan reply
}

// settle runs in a node's goroutine just before its acquire reply is
// delivered: from then on whoever abandons the attempt cleans the node up;
// if it was abandoned already, the node cleans itself up.
func (a *acquisition) settle(r *reply) func() {
	a.mu.Lock()
	a.replied[r.node] = true
	if notAsked(r.err) {
		a.mu.Unlock()
		return nil // nothing was set there
	}
	// A connection refused at connect never carried the call: like a
	// refusal, it set nothing, and the release vote is known.
	refused := refusal(*r) || errors.Is(r.err, syscall.ECONNREFUSED)
	a.answered[r.node] = !refused
	a.refused[r.node] = refused
	abandoned := a.abandoned
	a.mu.Unlock()
	switch {
	case !abandoned:
		return nil
	case refused:
		// Nothing to release: the release would have found another
		// token.
		a.released(r.node)
		return func() { a.lateRelease(notReleased(r.node)) }
	}
	return func() { a.releaseNow(r.node) }
}

// asking records that the acquire call goes to the listed nodes (all when
// list is nil).
func (a *acquisition) asking(list []int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if list == nil {
		for i := range a.asked {
			a.asked[i] = true
		}
		return
	}
	for _, i := range list {
		a.asked[i] = true
	}
}

// released records that node i's release has answered, or that the node
// needs none.
func (a *acquisition) released(i int) {
	if i < 64 {
		a.unreleased.And(^(uint64(1) << i))
	}
}

// refusal reports whether r, a judged acquire reply, says that the node
// holds another owner's key: the attempt set nothing there. A grant, even
// one whose vote is discarded, and an error may have set the key.
func refusal(r reply) bool {
	j, ok := r.val.(judgedAcquire)
	return r.err == nil && ok && !j.reply.Granted
}

// notReleased is the release vote of node i, known without asking it: the
// node refused the acquisition.
func notReleased(i int) reply { return reply{node: i, val: int64(0)} }

// abandon marks the attempt abandoned and returns the nodes that had already
// answered: the caller must release those; the others release themselves.
func (a *acquisition) abandon() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.abandonLocked()
	return a.answeredLocked()
}

// abandonLocked marks the attempt abandoned, and the nodes that may hold its
// key unreleased: those that answered but did not refuse, and those still to
// answer. The Locker's next attempts at the lock spare them meanwhile.
func (a *acquisition) abandonLocked() {
	a.abandoned = true
	var set uint64
	for i, ok := range a.replied {
		if i < 64 && (a.answered[i] || a.asked[i] && !ok) {
			set |= 1 << i
		}
	}
	a.unreleased.Store(set)
	a.lk.releasing.track(a)
}

// abandonForRelease is abandon for the release of the lock: it also returns
// the nodes that refused, whose release votes are known (notReleased), and
// how many nodes were still to answer, whose own releases (releaseNow) then
// arrive on a.late, so that Release counts every node.
func (a *acquisition) abandonForRelease() (answered, refused []int, late int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.abandonLocked()
	for i, ok := range a.replied {
		if !ok {
			late++
		}
		if a.refused[i] {
			refused = append(refused, i)
		}
	}
	if late > 0 {
		a.late = make(chan reply, late)
	}
	return a.answeredLocked(), refused, late
}

// answeredLocked lists the nodes that answered, the gate last: a release
// sets off its calls in that order, so that the other nodes are freed before
// the gate's notice wakes the next waiter.
func (a *acquisition) answeredLocked() []int {
	list := make([]int, 0, len(a.answered))
	for i, ok := range a.answered {
		if ok && i != a.gate {
			list = append(list, i)
		}
	}
	if a.answered[a.gate] {
		list = append(list, a.gate)
	}
	return list
}

// release is the owner-checked delete of this attempt's key on node i,
// announcing the release to waiters: on the lock's gate, to the first waiter
// of its turn queue only. The other nodes announce it only when the gate may
// not: waiters that hear the gate learn of the release from it alone, and
// those that do not (notify.go) poll.
func (a *acquisition) release(ctx context.Context, i int, p pool.Pool) (any, error) {
	defer a.released(i)
	if i == a.gate {
		return p.Eval(ctx, scripts.ReleaseTurn, a.turnKeys, a.token, a.lk.promiseMs(i))
	}
	if a.gateHeld.Load() {
		return p.Eval(ctx, scripts.Release, a.keys, a.quietArg...)
	}
	return p.Eval(ctx, scripts.Release, a.keys, a.tokenArg...)
}

// gateVoted records node i's answer to an extension: a gate that no longer
// holds the key will not announce its release.
func (a *acquisition) gateVoted(i int, held bool) {
	if i == a.gate && !held {
		a.gateHeld.Store(false)
	}
}

// cleanup removes a failed attempt's key from node i. It announces the
// release like any other: contenders refused by this key (votes split
// between several attempts) wait for that notice.
func (a *acquisition) cleanup(ctx context.Context, i int, p pool.Pool) (any, error) {
	return a.release(ctx, i, p)
}

// releaseNow releases node i from the calling goroutine, bounded by the
// attempt's node timeout and never by a caller's context. A node paused for
// a timeout (silence.go) is not asked now: the release is owed to it
// (owed.go), as is one that fails.
func (a *acquisition) releaseNow(i int) {
	if a.lk.skip(i) {
		a.released(i)
		a.lk.owe(i, a)
		a.lateRelease(reply{node: i, err: a.lk.skipped(i)})
		return
	}
	start := a.lk.cfg.clock.Now()
	ctx, stop := a.lk.bounded(context.Background(), a.timeout)
	val, err := a.cleanup(ctx, i, a.lk.nodes[i])
	if err != nil && ctxEnded(ctx) != nil {
		err = errNodeTimeout{timeout: a.timeout}
	}
	a.lk.heard(i, err, int64(start.Sub(a.lk.guard.origin)))
	if owing(err) {
		a.lk.owe(i, a)
	}
	stop()
	at := a.lk.cfg.clock.Now()
	a.lateRelease(reply{node: i, val: val, err: err, at: at, latency: at.Sub(start)})
}

// lateRelease hands a straggler's own release to the Release that counts it,
// if one does.
func (a *acquisition) lateRelease(r reply) {
	a.mu.Lock()
	late := a.late
	a.mu.Unlock()
	if late != nil {
		select {
		case late <- r:
		default: // room was made for every node still to answer
		}
	}
}
