package redlock

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/pool"
)

// A release that cannot reach its node is owed, not dropped.
//
// A node that timed out or refused a connection is paused (silence.go), and
// the releases meant for it meanwhile (a failed attempt's clean-up, a lock's
// release) are not sent; others fail on the way. Yet the node may hold the
// key: a call that ran out the node timeout may still be carried out, by a
// node that was hung, overloaded or restarting, once it comes back. Left
// there, that key refuses every contender on that node, this Locker's own
// attempts included, until its TTL runs out: a vote fewer for everyone for a
// whole TTL, and with three nodes and one of the others down, no lock at
// all. So the release is owed to the node: once its pause is over, the owed
// releases are sent, the first call serving as the pause's probe, and owed
// again for as long as the node does not answer them. Each is owner-checked
// with its attempt's own token, so a late one deletes nothing but that key.

// owedLimit bounds the releases owed to one node: past it the oldest are
// dropped (their keys expire with their TTL).
const owedLimit = 1024

// owedBatch is how many owed releases one payment sends: a node that comes
// back slow still answers them within the node timeout.
const owedBatch = 64

// owedFirst is how soon a release owed to a node that is not paused (its
// call failed otherwise: a connection reset, say) is sent again. Once a
// payment has failed, the next waits for silenceFor at least.
const owedFirst = silenceFor / 10

// owed is the releases owed to one node.
type owed struct {
	mu      sync.Mutex
	list    []*acquisition
	timer   clock.Timer // set while a payment is due
	paying  bool        // a payment is on its way: the next waits for it
	stopped bool        // Close has begun: nothing more is owed
}

// owing reports whether a release that ended with err may have left its key
// on the node: every failure but the node's error reply, which a second try
// would meet again.
func owing(err error) bool {
	if err == nil {
		return false
	}
	var reply *pool.ServerError // escapes: declared past the common case
	return !errors.As(err, &reply)
}

// oweFailed is a release round's settle: it owes the releases that did not
// get through.
func (a *acquisition) oweFailed(r *reply) func() {
	if owing(r.err) {
		a.lk.owe(r.node, a)
	}
	return nil
}

// owe records that node i's release of a's key did not get through.
func (lk *Locker) owe(i int, a *acquisition) {
	o := &lk.owed[i]
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return
	}
	if len(o.list) >= owedLimit {
		o.list = append(o.list[:0], o.list[1:]...)
	}
	o.list = append(o.list, a)
	lk.payLaterLocked(i, o, owedFirst)
}

// payLaterLocked arranges for the releases owed to node i to be sent when
// its pause ends, and no sooner than after atLeast.
func (lk *Locker) payLaterLocked(i int, o *owed, atLeast time.Duration) {
	if o.timer != nil || o.paying || len(o.list) == 0 {
		return
	}
	wait := max(time.Duration(lk.silent[i].until.Load()-lk.sinceStart()), atLeast)
	o.timer = lk.cfg.clock.AfterFunc(wait, func() { lk.pay(i) })
}

// pay sends up to owedBatch of the releases owed to node i, one after the
// other in one call bounded by the node timeout, and owes again those it
// could not send. Once the node has answered one, a failure of the next
// ends the payment without pausing the node: it works, if slowly, and the
// rest follow shortly.
func (lk *Locker) pay(i int) {
	o := &lk.owed[i]
	o.mu.Lock()
	batch := o.list[:min(len(o.list), owedBatch)]
	o.list = o.list[len(batch):]
	o.timer, o.paying = nil, len(batch) > 0
	o.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	var timeout time.Duration
	for _, a := range batch {
		timeout = max(timeout, a.timeout)
	}
	sent := 0
	ch, _, err := lk.fanout(context.Background(), []int{i}, timeout, func(ctx context.Context, i int, p pool.Pool) (any, error) {
		for _, a := range batch {
			if _, err := a.release(ctx, i, p); owing(err) {
				if sent > 0 {
					return nil, nil
				}
				return nil, err
			}
			sent++
		}
		return nil, nil
	}, nil, nil)
	if err == nil {
		<-ch
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.paying = false
	if o.stopped || err != nil {
		return // closed: the keys expire with their TTL
	}
	next := owedFirst // for the rest, and those owed meanwhile
	if sent < len(batch) {
		// Owed before the others, within the limit.
		unsent := batch[sent:]
		if room := owedLimit - len(o.list); len(unsent) > room {
			unsent = unsent[len(unsent)-max(room, 0):]
		}
		o.list = append(slices.Clip(unsent), o.list...)
		if sent == 0 {
			next = silenceFor
		}
	}
	lk.payLaterLocked(i, o, next)
}

// forgetOwed stops paying the owed releases: the Locker is closing.
func (lk *Locker) forgetOwed() {
	for i := range lk.owed {
		o := &lk.owed[i]
		o.mu.Lock()
		o.stopped = true
		o.list = nil
		if o.timer != nil {
			o.timer.Stop()
			o.timer = nil
		}
		o.mu.Unlock()
	}
}
