package redlock

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/quorum"
	"github.com/quorumlock/quorumlock/pool"
)

// reply is one node's answer in a round.
type reply struct {
	node    int
	val     any
	err     error
	at      time.Time     // when it was read
	latency time.Duration // from the fan-out's start to at
}

// nodeOp is what a round asks of node i, whose pool is p.
type nodeOp func(ctx context.Context, i int, p pool.Pool) (any, error)

// fanout starts op on the listed nodes (all nodes when list is nil), each in
// its own goroutine tracked by the Locker, each bounded by ctx and by timeout
// on the Locker's clock. A call to a node paused for a timeout is skipped
// (silence.go), and so is one that spare, if set, answers with an error
// (a lagging node, lag.go; a release on its way, releasing.go): its reply
// is that error, at once. Replies arrive on the returned
// channel, which has room for all of them so that stragglers never block.
// settle, if set, runs in the node's goroutine just before its reply is
// delivered (so the reply's reader sees what it recorded, and it may rewrite
// the reply); the function it returns, if any, runs after.
//
// It fails with ErrClosed once Close has been called: no goroutine is started
// after Close begins to wait for them.
func (lk *Locker) fanout(ctx context.Context, list []int, timeout time.Duration, op nodeOp, settle func(*reply) func(), spare func(i int) error) (<-chan reply, int, error) {
	n := len(list)
	if list == nil {
		n = len(lk.nodes)
	}
	out := make(chan reply, n)
	lk.mu.RLock()
	defer lk.mu.RUnlock()
	if lk.closed {
		return nil, 0, ErrClosed
	}
	if n == 0 {
		return out, 0, nil
	}
	rctx, stop := lk.bounded(ctx, timeout)
	_, real := lk.cfg.clock.(clock.Real)
	var left atomic.Int32
	left.Store(int32(n))
	start := lk.cfg.clock.Now()
	sent := int64(start.Sub(lk.guard.origin)) // as heard counts
	for k := 0; k < n; k++ {
		i := k
		if list != nil {
			i = list[k]
		}
		var skipped error
		if lk.skip(i) {
			skipped = lk.skipped(i)
		} else if spare != nil {
			skipped = spare(i)
		}
		call := func() error {
			var val any
			var err error
			if skipped != nil {
				err = skipped
			} else if late := ctxEnded(rctx); late != nil {
				// This goroutine started after the round's time was up
				// (a paused or starved client): the call was never sent,
				// and says nothing about the node.
				err = late
				if ctxEnded(ctx) == nil {
					err = errNodeTimeout{timeout: timeout}
				}
			} else {
				// Counted while sent (lag.go).
				inflight := &lk.lags[i].inflight
				inflight.Add(1)
				val, err = op(rctx, i, lk.nodes[i])
				inflight.Add(-1)
				switch {
				case err == nil:
				case ctxEnded(ctx) != nil:
					// The client library may turn the caller's deadline into
					// a socket deadline that fires just before ctx.Done: the
					// node did not fail, the caller's time ran out.
					err = ctxEnded(ctx)
				case ctxEnded(rctx) != nil:
					// The socket timeout may fire a moment before rctx's own.
					err = errNodeTimeout{timeout: timeout}
				}
				lk.heard(i, err, sent)
			}
			at := lk.cfg.clock.Now()
			r := reply{node: i, val: val, err: err, at: at, latency: at.Sub(start)}
			if err == nil {
				lk.noteLatency(i, r.latency)
			}
			var then func()
			if settle != nil {
				then = settle(&r)
			}
			out <- r
			if left.Add(-1) == 0 {
				stop()
			}
			if then != nil {
				then()
			}
			return nil
		}
		if inline := skipped != nil || (real && len(lk.nodes) == 1); inline {
			// A skipped call costs nothing. With one node
			// there is nothing to wait for in parallel, and the call is
			// bounded by rctx's deadline (the node timeout, or the caller's
			// deadline if sooner) on the calling goroutine. Only a
			// cancellation without a deadline waits for the call.
			_ = call()
			continue
		}
		lk.bg.Go(call)
	}
	return out, n, nil
}

// bounded returns ctx bounded by timeout on the Locker's clock, and the
// function that releases it. With the real clock the bound is a deadline the
// pool can see, so that it bounds each call by a socket timeout on the
// calling goroutine instead of a goroutine per call; a fake clock cancels the
// context when its timer fires.
func (lk *Locker) bounded(ctx context.Context, timeout time.Duration) (context.Context, func()) {
	if _, real := lk.cfg.clock.(clock.Real); real {
		return context.WithTimeout(ctx, timeout)
	}
	rctx, cancel := context.WithCancel(ctx)
	timer := lk.cfg.clock.AfterFunc(timeout, cancel)
	return rctx, func() {
		timer.Stop()
		cancel()
	}
}

// notAsked reports whether err is that of a call that was skipped, not made.
func notAsked(err error) bool {
	switch err.(type) {
	case errNodeSilent, errNodeDown, errNodeLagging, errNodeReleasing:
		return true
	}
	return false
}

// ctxEnded returns ctx's error, or context.DeadlineExceeded once its deadline
// has passed even if ctx.Done has not fired yet. Context deadlines are real
// time, so this reads the real clock, not the Locker's.
func ctxEnded(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// errNodeTimeout reports a node that did not answer within the round's
// per-node timeout.
type errNodeTimeout struct {
	timeout time.Duration
}

func (e errNodeTimeout) Error() string {
	return "no answer within the node timeout of " + e.timeout.String()
}

// Unwrap makes a node timeout match context.DeadlineExceeded, never the
// context.Canceled of the round's own cancellation, which would read as the
// caller giving up.
func (e errNodeTimeout) Unwrap() error { return context.DeadlineExceeded }

// Timeout reports true, as net errors do for timeouts.
func (e errNodeTimeout) Timeout() bool { return true }

// round gathers the votes of one fan-out, or of two whose replies count
// together (a contended attempt's gate, then the other nodes).
type round struct {
	ch, ch2  <-chan reply // ch2 may be nil
	expected int
	got      int
	votes    []NodeVote
	tally    quorum.Tally
}

// newRound starts counting the replies on ch, expected of them; the tally is
// over all nodes of the Locker, nodes not asked counting as failed.
func (lk *Locker) newRound(ch <-chan reply, expected int) *round {
	rd := &round{ch: ch, expected: expected, votes: make([]NodeVote, len(lk.nodes)), tally: quorum.New(len(lk.nodes), lk.quorum)}
	for i, p := range lk.nodes {
		rd.votes[i].Addr = p.Addr()
	}
	rd.tally.Failed = len(lk.nodes) - expected
	return rd
}

// collect reads replies until the round is decided, the replies run out, or
// ctx ends. classify turns a reply into a vote.
func (rd *round) collect(ctx context.Context, classify func(reply) NodeVote) error {
	for ; rd.got < rd.expected && !rd.tally.Decided(); rd.got++ {
		var r reply
		select {
		case r = <-rd.ch:
		case r = <-rd.ch2:
		case <-ctx.Done():
			return ctx.Err()
		}
		rd.add(r, classify)
	}
	return nil
}

// add counts one reply.
func (rd *round) add(r reply, classify func(reply) NodeVote) {
	v := classify(r)
	v.Addr, v.Answered, v.Latency = rd.votes[r.node].Addr, true, r.latency
	rd.votes[r.node] = v
	rd.tally.Add(v.Yes && v.Err == nil)
}

// collect runs a whole round at once; see round.collect.
func (lk *Locker) collect(ctx context.Context, ch <-chan reply, expected int, classify func(reply) NodeVote) ([]NodeVote, quorum.Tally, error) {
	rd := lk.newRound(ch, expected)
	err := rd.collect(ctx, classify)
	return rd.votes, rd.tally, err
}

// verdict names the sentinel for a round that failed: notYes (ErrHeld,
// ErrNotHeld) when the refusals received alone make a quorum impossible, and
// ErrNoQuorum otherwise, when failing nodes (errors, no answer, quarantine)
// are to blame. It reflects the answers received when the round was decided:
// with refusals and errors mixed, nodes not waited for might have tipped it
// either way.
func verdict(votes []NodeVote, need int, notYes error) error {
	refused := 0
	for _, v := range votes {
		if v.Answered && v.Err == nil && !v.Yes && v.Discarded == "" {
			refused++
		}
	}
	if len(votes)-refused < need {
		return notYes
	}
	return ErrNoQuorum
}
