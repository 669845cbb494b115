package redlock

import (
	"context"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
)

// Contended attempts go through a gate.
//
// When several processes race for a lock that was just released, each asking
// every node at once, the nodes often grant it to different contenders: no
// one reaches a quorum, everyone cleans up and backs off, and the lock sits
// free. A contended attempt therefore asks one node first, the gate, the same
// node for every Locker configured with the same addresses (whatever their
// order); only the contender the gate grants asks the other nodes. The race
// is decided on one node, the losers spend one call each, and the votes do
// not split. An uncontended attempt skips the gate: it would cost a round
// trip for nothing.
//
// The gate is only a meeting point: its vote counts like any other, safety
// still rests on the quorum. A gate that errs or answers slowly does not hold
// the attempt up: the other nodes are asked at once (errors) or after
// gateWait (silence), and its answer, when it comes, counts as usual.

// Contenders also take turns. A waiter refused by the gate joins the lock's
// turn queue there (a sorted set by arrival, scripts.Acquire), when its
// Locker hears the gate's release notices. Releasing the lock on the gate
// takes the first waiter out of the queue and names it on its own channel
// (scripts.ReleaseTurn, scripts.TurnChannel): only that Locker hears of it
// and wakes, and asks every node at once
// (the gate has let it through), while the others sleep on. One release
// thus costs one attempt, not one per waiting process, and the lock passes
// in arrival order: for promiseMs, the lock key on the gate holds the
// promise, and the gate refuses the others (a releaser
// coming back at once would otherwise win the gate before the waiter named
// even heard its name). Nothing rests on the queue: a waiter whose notice is
// lost (its Locker gone, a connection cut) is one wake-up missed, and every
// waiter still tries again at least every SafetyPoll, or when the holder's
// TTL runs out; the queue expires queueTTL after its last arrival.
//
// The gate's notice is the release's announcement: the other nodes release
// a lock the gate held without a notice of their own (their notices would
// wake no waiter in the queue, and cost a message per waiting process per
// node), and announce only when the gate may not (acquisition.release).
// A waiter that cannot hear the gate while it is up for the holder waits
// for its timer (notifier.liveLocked).

// queueTTL is how long a turn queue outlives its last arrival; waiters
// refresh it each time they are refused, at least every SafetyPoll.
const queueTTL = 5 * SafetyPoll

// promiseMs bounds how long a lock stays promised to the waiter named
// when it was released: long enough for the notice to reach it and its
// call to reach the gate, a few times the gate's usual latency, short enough
// that a waiter gone costs little.
func (lk *Locker) promiseMs(gate int) string {
	usual := time.Duration(lk.guard.nodes[gate].latency.Load())
	d := min(max(16*usual, promiseMin), promiseMax)
	return strconv.FormatInt(d.Milliseconds(), 10)
}

// promiseMin and promiseMax bound how long a lock is promised to a waiter.
const (
	promiseMin = 20 * time.Millisecond
	promiseMax = 250 * time.Millisecond
)

// queueTimeout bounds the turn queue's own calls (leaving it, passing on a
// turn): a node timeout as for a lock that lives as long as the queue.
func (lk *Locker) queueTimeout() time.Duration { return lk.timeoutFor(queueTTL) }

// leaveQueue takes this Locker out of key's turn queue, in the background:
// its last waiter gave up, and a turn handed to it would be lost.
func (lk *Locker) leaveQueue(key string, timeout time.Duration) {
	g := lk.gate(key)
	queue, id := lk.queueKey(key), lk.id
	_, _, _ = lk.fanout(context.Background(), []int{g}, timeout, func(ctx context.Context, _ int, p pool.Pool) (any, error) {
		return p.Eval(ctx, scripts.Leave, []string{queue}, id)
	}, nil, nil)
}

// declineTurn passes on a turn the gate gave this Locker while none of its
// goroutines waits for key (an arrival left in the queue by a late answer, a
// waiter that gave up meanwhile): the lock promised to this Locker goes to
// the next in line, or is freed and announced, at once rather than when the
// promise runs out with no notice.
func (lk *Locker) declineTurn(key string) {
	_, _, _ = lk.fanout(context.Background(), []int{lk.gate(key)}, lk.queueTimeout(), lk.passTurn(key, false), nil, nil)
}

// leaveAll takes this Locker out of the turn queues of the locks it waited
// for lately, and passes on any turn given to it there, before Close: a
// Locker gone would otherwise be promised a lock that nobody takes until the
// promise runs out, with no notice to the waiters behind it. Each call is
// bounded by the node timeout.
func (lk *Locker) leaveAll() {
	keys := lk.notify.waited()
	chans := make([]<-chan reply, 0, len(keys))
	for _, key := range keys {
		ch, _, err := lk.fanout(context.Background(), []int{lk.gate(key)}, lk.queueTimeout(), lk.passTurn(key, true), nil, nil)
		if err == nil {
			chans = append(chans, ch)
		}
	}
	for _, ch := range chans {
		<-ch
	}
}

// passTurn is the call on key's gate that hands a lock promised to this
// Locker to the next in line (ReleaseTurn, with the promise as the token),
// after taking this Locker out of the queue when leave is set.
func (lk *Locker) passTurn(key string, leave bool) nodeOp {
	g := lk.gate(key)
	keys := []string{key, lk.queueKey(key)}
	return func(ctx context.Context, _ int, p pool.Pool) (any, error) {
		if leave {
			if _, err := p.Eval(ctx, scripts.Leave, keys[1:], lk.id); err != nil {
				return nil, err
			}
		}
		return p.Eval(ctx, scripts.ReleaseTurn, keys, scripts.Promised+lk.id, lk.promiseMs(g))
	}
}

// hotFor is how long a lock counts as contended after this Locker last saw
// another owner hold it.
const hotFor = time.Second

// hotLimit bounds the contended-lock records; past it the stale ones go.
const hotLimit = 4096

// hotKeys remembers which locks this Locker recently found held by
// another owner.
type hotKeys struct {
	mu   sync.Mutex
	seen map[string]time.Time
	// own holds, per key, the holder ids of the last locks this Locker
	// released (ownKept of them): a node still holding one has not
	// processed its release yet, which is no sign of another owner.
	own map[string][]string
}

// ownKept is how many released holder ids per lock are remembered.
const ownKept = 8

// released records that this Locker is releasing its lock on key with the
// given holder id.
func (c *hotKeys) released(key, holder string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.own == nil || (len(c.own) >= hotLimit && c.own[key] == nil) {
		c.own = map[string][]string{}
	}
	ids := c.own[key]
	if len(ids) >= ownKept {
		ids = ids[1:]
	}
	c.own[key] = append(ids, holder)
}

// others reports whether holder is another owner's, not one of this
// Locker's recently released locks on key.
func (c *hotKeys) others(key, holder string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !slices.Contains(c.own[key], holder)
}

// mark records that key was found held by another owner at now.
func (c *hotKeys) mark(key string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]time.Time{}
	}
	if len(c.seen) >= hotLimit {
		for k, t := range c.seen {
			if now.Sub(t) >= hotFor {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= hotLimit {
			clear(c.seen)
		}
	}
	c.seen[key] = now
}

// forget clears key's contention record.
func (c *hotKeys) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.seen, key)
}

// hot reports whether key was found held by another owner within hotFor.
func (c *hotKeys) hot(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.seen[key]
	if ok && now.Sub(t) >= hotFor {
		delete(c.seen, key)
		return false
	}
	return ok
}

// noteContention updates key's contention record from a round's votes. A
// refusal for another owner marks the lock contended when every node that
// answered did so without error. A round with a failing node clears the
// record instead: a gate's refusal is then no proof that anyone holds a
// quorum (it may be a key of some contender's failed attempt while too few
// nodes answer for anyone to win), so the next attempts ask every node and
// report what fails (ErrNoQuorum), not ErrHeld from the gate.
func (lk *Locker) noteContention(key string, votes []NodeVote) {
	other := false
	for _, v := range votes {
		switch v.Err.(type) {
		case errNodeLagging, errNodeReleasing:
			// Spared only while a quorum and one more are asked.
			continue
		}
		switch {
		case v.Err != nil:
			lk.hot.forget(key)
			return
		case v.Holder != "" && lk.hot.others(key, v.Holder):
			other = true
		}
	}
	if other {
		lk.hot.mark(key, lk.cfg.clock.Now())
	}
}

// gateOrder returns the node indexes ordered by address, so that Lockers
// listing the same nodes in different orders pick the same gate.
func gateOrder(addrs []string) []int {
	order := make([]int, len(addrs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return strings.Compare(strings.ToLower(addrs[a]), strings.ToLower(addrs[b]))
	})
	return order
}

// gate returns the node a contended attempt on key asks first. Keys are
// spread over the nodes so that no node gates every lock.
func (lk *Locker) gate(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return lk.gates[h.Sum32()%uint32(len(lk.gates))]
}

// gateWait is how long a contended attempt waits for the gate's answer
// before asking the other nodes anyway: a few times the node's usual
// latency, at least a millisecond, at most the node timeout.
func (lk *Locker) gateWait(i int, timeout time.Duration) time.Duration {
	usual := time.Duration(lk.guard.nodes[i].latency.Load())
	return min(max(4*usual, time.Millisecond), timeout)
}
