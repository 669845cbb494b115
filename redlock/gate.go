package redlock

import (
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"
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
