package redlock_test

import (
	"context"
	"errors"
	"hash/fnv"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// gateCluster is five counted in-memory nodes, a rival Locker holding "g",
// and a Locker that has found it held once, so that its next attempt on "g"
// is a contended one.
type gateCluster struct {
	*cluster
	probes []*probe
	rival  *redlock.Lock
}

func newGateCluster(t *testing.T) *gateCluster {
	t.Helper()
	gc := &gateCluster{cluster: newCluster(t, 5)}
	for _, n := range gc.nodes {
		gc.probes = append(gc.probes, newProbe(n))
	}
	rival := newLocker(t, gc.clock, gc.pools(), redlock.WithNodeTimeout(time.Hour))
	gc.rival = obtainEverywhere(t, gc.cluster, rival, "g", time.Minute)
	return gc
}

// pools returns the probes as pools, in the order given.
func (gc *gateCluster) poolsIn(order []int) []pool.Pool {
	ps := make([]pool.Pool, len(order))
	for k, i := range order {
		ps[k] = gc.probes[i]
	}
	return ps
}

// counts returns how many acquire calls each node has received, once
// the calls in flight have arrived: at least want in all.
func (gc *gateCluster) counts(t *testing.T, want int) []int {
	t.Helper()
	read := func() []int {
		out := make([]int, len(gc.probes))
		for i, p := range gc.probes {
			out[i] = p.count(scripts.Acquire.Name)
		}
		return out
	}
	eventually(t, "the calls reach the nodes", func() bool { return sum(read()) >= want })
	return read()
}

// twoAttempts is a Backoff for Obtain that gives up after two attempts:
// the second follows the first at once (once the Locker has subscribed), as
// in any Obtain.
var twoAttempts = redlock.LimitAttempts(redlock.ConstantBackoff(time.Hour), 2)

// locker returns a Locker over the probes in order whose Obtain makes two
// attempts.
func (gc *gateCluster) locker(t *testing.T, order []int) *redlock.Locker {
	t.Helper()
	return newLocker(t, gc.clock, gc.poolsIn(order), redlock.WithNodeTimeout(time.Hour), redlock.WithBackoff(twoAttempts))
}

func diff(after, before []int) []int {
	d := make([]int, len(after))
	for i := range after {
		d[i] = after[i] - before[i]
	}
	return d
}

// gateOf has lk, which has not seen "g" held yet, Obtain it while it is
// held: the first attempt asks every node, the second, contended, only the
// gate, which refuses. It returns the gate.
func (gc *gateCluster) gateOf(t *testing.T, lk *redlock.Locker) int {
	t.Helper()
	before := gc.counts(t, 0)
	_, err := lk.Obtain(t.Context(), "g", time.Minute)
	if !errors.Is(err, redlock.ErrHeld) {
		t.Fatalf("Obtain of a held lock = %v, want ErrHeld", err)
	}
	d := diff(gc.counts(t, sum(before)+len(gc.probes)+1), before)
	asked := []int{}
	for i, n := range d {
		if n == 2 {
			asked = append(asked, i)
		} else if n != 1 {
			asked = nil
			break
		}
	}
	if len(asked) != 1 {
		t.Fatalf("two attempts, the second contended, made calls %v; want one on every node, and a second on one", d)
	}
	// The wait the error suggests is the gate holder's TTL.
	if ttl, ok := quorumError(t, err).HolderTTL(); !ok || ttl <= 0 || ttl > time.Minute {
		t.Errorf("HolderTTL of a gate refusal = %v, %v; want the holder's TTL", ttl, ok)
	}
	return asked[0]
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

// turnQueue returns the waiters in the turn queue of "g" on its gate.
func (gc *gateCluster) turnQueue(gate int) []string {
	return gc.nodes[gate].Queue("\x00turn:" + lockKey("g"))
}

// untilQueued advances the clock by SafetyPoll until the turn queue of "g"
// holds at least n waiters: waiters retry when their timer fires, and join
// the queue once they hear the gate's notices.
func (gc *gateCluster) untilQueued(t *testing.T, gate, n int) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for len(gc.turnQueue(gate)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("never %d waiters in the turn queue", n)
		}
		gc.clock.Advance(redlock.SafetyPoll)
		time.Sleep(time.Millisecond)
	}
}

// A contended attempt asks one node, the same one for every Locker listing
// the same nodes whatever their order; when it refuses, no other is asked.
func TestContendedAttemptAsksTheGateOnly(t *testing.T) {
	gc := newGateCluster(t)
	orders := [][]int{{0, 1, 2, 3, 4}, {4, 3, 2, 1, 0}, {2, 0, 4, 1, 3}}
	gate := -1
	for _, order := range orders {
		g := gc.gateOf(t, gc.locker(t, order))
		if gate >= 0 && g != gate {
			t.Fatalf("Lockers with nodes in order %v and %v have gates %d and %d", orders[0], order, gate, g)
		}
		gate = g
	}
}

// Different locks spread their gates over the nodes.
func TestGatesSpreadOverNodes(t *testing.T) {
	gc := &gateCluster{cluster: newCluster(t, 5)}
	for _, n := range gc.nodes {
		gc.probes = append(gc.probes, newProbe(n))
	}
	lk := gc.locker(t, []int{0, 1, 2, 3, 4})
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}
	gates := map[int]bool{}
	for _, name := range names {
		for _, n := range gc.nodes {
			n.Set(lockKey(name), "someone", time.Hour)
		}
		before := gc.counts(t, 0)
		// The first attempt finds it held, the second is contended.
		if _, err := lk.Obtain(t.Context(), name, time.Minute); !errors.Is(err, redlock.ErrHeld) {
			t.Fatal(err)
		}
		for i, n := range diff(gc.counts(t, sum(before)+6), before) {
			if n == 2 {
				gates[i] = true
			}
		}
	}
	if len(gates) < 2 {
		t.Errorf("%d locks were all gated by nodes %v, want their gates spread", len(names), slices.Sorted(maps.Keys(gates)))
	}
}

// A gate that fails or stays silent does not stop a contended attempt: the
// other nodes are asked at once, or after a short wait, and grant the lock.
func TestContendedAttemptGoesOnWithoutItsGate(t *testing.T) {
	for _, tt := range []struct {
		name      string
		breakGate func(p *probe)
	}{
		{"gate fails", func(p *probe) { p.Fail(errors.New("connection refused")) }},
		{"gate hangs", func(p *probe) { p.Hang() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gc := newGateCluster(t)
			lk := gc.locker(t, []int{0, 1, 2, 3, 4})
			gate := gc.gateOf(t, lk)
			if err := gc.rival.Release(t.Context()); err != nil {
				t.Fatal(err)
			}
			// Every node's release ends before the gate breaks: one that
			// failed would be owed to it (owed.go), and paid on the clock
			// the attempt is timed on.
			eventually(t, "every node is released", func() bool {
				for _, n := range gc.nodes {
					if _, _, ok := n.Get(lockKey("g")); ok {
						return false
					}
				}
				return true
			})
			tt.breakGate(gc.probes[gate])
			before := gc.counts(t, 0)
			ch := start(func() (*redlock.Lock, error) { return lk.Obtain(context.Background(), "g", time.Minute) })
			r, at := driveUntil(t, gc.clock, epoch.Add(time.Second), ch)
			if r.err != nil {
				t.Fatalf("Obtain without its gate = %v", r.err)
			}
			if wait := at.Sub(epoch); wait > 10*time.Millisecond {
				t.Errorf("the attempt waited %v for its gate", wait)
			}
			d := diff(gc.counts(t, sum(before)+5), before)
			for i, n := range d {
				if n != 1 {
					t.Errorf("node %d was asked %d times, want once (calls %v)", i, n, d)
				}
			}
			if err := r.lock.Release(t.Context()); err != nil {
				t.Errorf("Release: %v", err)
			}
		})
	}
}

// Obtain on a lock found held goes through the gate from its first attempt,
// for a while: once contention is forgotten, its first attempt asks every
// node again. TryObtain always asks every node: its single attempt must not
// fail on a gate that still holds a key the rest of the quorum has freed.
func TestContentionIsForgotten(t *testing.T) {
	gc := newGateCluster(t)
	gate := gc.gateOf(t, gc.locker(t, []int{0, 1, 2, 3, 4}))
	// One attempt per call: an Obtain that waits for a release notice
	// would wait for ever here.
	lk := newLocker(t, gc.clock, gc.poolsIn([]int{0, 1, 2, 3, 4}), redlock.WithNodeTimeout(time.Hour), redlock.WithBackoff(redlock.NoRetry()))
	want := func(what string, obtain func() error, calls []int) {
		t.Helper()
		before := gc.counts(t, 0)
		if err := obtain(); !errors.Is(err, redlock.ErrHeld) {
			t.Fatalf("%s = %v, want ErrHeld", what, err)
		}
		if d := diff(gc.counts(t, sum(before)+sum(calls)), before); !slices.Equal(d, calls) {
			t.Errorf("%s made calls %v, want %v", what, d, calls)
		}
	}
	obtain := func() error { _, err := lk.Obtain(t.Context(), "g", time.Minute); return err }
	tryObtain := func() error { _, err := lk.TryObtain(t.Context(), "g", time.Minute); return err }
	full := []int{1, 1, 1, 1, 1}
	want("Obtain finding the lock held", obtain, full)
	gateOnly := make([]int, 5)
	gateOnly[gate] = 1
	want("Obtain while contended", obtain, gateOnly)
	want("TryObtain while contended", tryObtain, full)
	gc.clock.Advance(2 * time.Second)
	want("Obtain once contention is forgotten", obtain, full)
}

// With too many nodes failing for any quorum, refusals on the others are no
// contention worth a gate: every attempt asks every node, and Obtain reports
// the failing nodes, not a lock held on what is left.
func TestNoGateWithoutAPossibleQuorum(t *testing.T) {
	// The gate of "g" over these addresses, and one other node, survive.
	first := newGateCluster(t)
	gate := first.gateOf(t, first.locker(t, []int{0, 1, 2, 3, 4}))
	survivors := map[int]bool{gate: true, (gate + 1) % 5: true}

	gc := &gateCluster{cluster: newCluster(t, 5)}
	for i, n := range gc.nodes {
		gc.probes = append(gc.probes, newProbe(n))
		if survivors[i] {
			n.Set(lockKey("g"), "someone", time.Minute)
		} else {
			n.Fail(errors.New("connection refused"))
		}
	}
	lk := newLocker(t, gc.clock, gc.poolsIn([]int{0, 1, 2, 3, 4}), redlock.WithNodeTimeout(time.Hour), redlock.WithBackoff(redlock.NoRetry()))
	// TryObtain finds the lock held on the nodes that answer; then one
	// Obtain attempt (NoRetry), which would go through the gate if the
	// lock counted as contended.
	for _, obtain := range []func(context.Context, string, time.Duration) (*redlock.Lock, error){lk.TryObtain, lk.Obtain} {
		if _, err := obtain(t.Context(), "g", time.Minute); !errors.Is(err, redlock.ErrNoQuorum) {
			t.Fatalf("with 3 of 5 nodes failing: %v, want ErrNoQuorum", err)
		}
	}
	if d := gc.counts(t, 10); !slices.Equal(d, []int{2, 2, 2, 2, 2}) {
		t.Errorf("two attempts made calls %v, want both on every node", d)
	}
}

// Waiters of separate Lockers take turns: refused by the gate, each joins
// the lock's turn queue, and a release wakes only the first in line, which
// obtains the lock while the next makes no call; the next release is its
// turn.
func TestReleaseWakesOnlyTheNextInLine(t *testing.T) {
	gc := newGateCluster(t)
	gate := gc.gateOf(t, gc.locker(t, []int{0, 1, 2, 3, 4}))
	untilQueued := func(n int) { t.Helper(); gc.untilQueued(t, gate, n) }
	// gateOf's Locker left the queue when it gave up.
	eventually(t, "the queue is empty", func() bool { return len(gc.turnQueue(gate)) == 0 })
	obtain := func(lk *redlock.Locker) <-chan result {
		return start(func() (*redlock.Lock, error) { return lk.Obtain(context.Background(), "g", time.Minute) })
	}
	first := obtain(newLocker(t, gc.clock, gc.poolsIn([]int{0, 1, 2, 3, 4}), redlock.WithNodeTimeout(time.Hour)))
	untilQueued(1)
	// The queue orders by arrival time in ms, then by name.
	gc.clock.Advance(time.Millisecond)
	second := obtain(newLocker(t, gc.clock, gc.poolsIn([]int{0, 1, 2, 3, 4}), redlock.WithNodeTimeout(time.Hour)))
	untilQueued(2)

	// The attempts the clock's advance set off may still be landing: the
	// clock stands still from here, so the counts settle.
	before := gc.counts(t, 0)
	for stable := 0; stable < 3; {
		time.Sleep(30 * time.Millisecond)
		now := gc.counts(t, 0)
		if slices.Equal(now, before) {
			stable++
		} else {
			stable, before = 0, now
		}
	}
	if err := gc.rival.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-first:
	case r = <-second:
		t.Fatalf("the second in line obtained the lock first: %v", r.err)
	case <-time.After(hangBound):
		t.Fatal("no waiter obtained the released lock without its timer")
	}
	if r.err != nil {
		t.Fatalf("first in line: %v", r.err)
	}
	// One attempt on every node: the first waiter's. The second sleeps.
	gc.counts(t, sum(before)+5)
	time.Sleep(20 * time.Millisecond)
	if d := diff(gc.counts(t, 0), before); sum(d) != 5 {
		t.Errorf("the release was followed by acquire calls %v, want one attempt's (1 on each node)", d)
	}
	if err := r.lock.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case r = <-second:
		if r.err != nil {
			t.Fatalf("second in line: %v", r.err)
		}
	case <-time.After(hangBound):
		t.Fatal("the second in line was not woken by the next release")
	}
	_ = r.lock.Release(t.Context())
}

// A release is announced by the lock's gate alone when the gate held the
// lock: its notice wakes every waiter that hears it (or names the next in
// line), and waiters that cannot hear it poll. When the gate did not hold
// the lock, the other nodes announce their releases.
func TestOnlyTheGateAnnouncesItsRelease(t *testing.T) {
	c := newCluster(t, 5)
	lk := c.locker()
	key := lockKey("a")
	subs := make([]pool.Subscription, len(c.nodes))
	for i, n := range c.nodes {
		s, err := n.Subscribe(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		if err := s.Subscribe(key); err != nil {
			t.Fatal(err)
		}
		subs[i] = s
	}
	// announced returns, per node, the release notices received since the
	// last call.
	announced := func() []int {
		out := make([]int, len(subs))
		for i, s := range subs {
			if err := s.Ping(); err != nil {
				t.Fatal(err)
			}
			for {
				ev, err := s.Receive(hangBound)
				if err != nil {
					t.Fatal(err)
				}
				if ev.Kind == pool.EventPong {
					break
				}
				if ev.Kind == pool.EventMessage {
					out[i]++
				}
			}
		}
		return out
	}
	_ = announced() // the subscriptions' confirmations
	// A release sent before the gate's grant was read cannot count on the
	// gate (its own clean-up announces then): try until one was not.
	gate := -1
	var seen [][]int
	for len(seen) < 20 && gate < 0 {
		l := obtainEverywhere(t, c, lk, "a", time.Minute)
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		eventually(t, "every node released the key", noKey(c, "a"))
		got := announced()
		if sum(got) == 1 {
			gate = slices.Index(got, 1)
		}
		seen = append(seen, got)
	}
	if gate < 0 {
		t.Fatalf("release notices per node %v, want one, from the gate", seen)
	}

	c.nodes[gate].Fail(errDown)
	calls, _ := c.nodes[gate].Calls()
	l, err := lk.TryObtain(t.Context(), "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gate failed the call", func() bool { n, _ := c.nodes[gate].Calls(); return n > calls })
	eventually(t, "the other nodes hold the key", func() bool {
		for i, n := range c.nodes {
			if val, _, ok := n.Get(key); i != gate && (!ok || val != l.Token()) {
				return false
			}
		}
		return true
	})
	c.nodes[gate].Fail(nil)
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every node released the key", noKey(c, "a"))
	want := []int{1, 1, 1, 1, 1}
	want[gate] = 0
	if got := announced(); !slices.Equal(got, want) {
		t.Errorf("with the gate down when obtained, release notices per node %v, want %v", got, want)
	}
}

// deaf is a node's Pool without its Subscribe: a Locker cannot hear the
// node's release notices.
type deaf struct{ pool.Pool }

// gateIndex returns the gate of name among nodes named as newCluster names
// them (their addresses sort in index order): see gate.go.
func gateIndex(n int, name string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(lockKey(name)))
	return int(h.Sum32() % uint32(n))
}

// A waiter that cannot hear its lock's gate, while the gate is up for the
// holder, does not hear a release the gate announces (the other nodes leave
// it to the gate): it waits for its timer, SafetyPoll at most.
func TestWaiterDeafToTheGateWaitsForItsTimer(t *testing.T) {
	c := newCluster(t, 5)
	held := obtainEverywhere(t, c, c.locker(), "g", time.Minute)
	gate := gateIndex(len(c.nodes), "g")
	probes := make([]*probe, len(c.nodes))
	pools := make([]pool.Pool, len(c.nodes))
	for i, n := range c.nodes {
		probes[i] = newProbe(n)
		pools[i] = probes[i]
	}
	pools[gate] = deaf{probes[gate]}
	waiter := newLocker(t, c.clock, pools)
	got := start(func() (*redlock.Lock, error) { return waiter.Obtain(context.Background(), "g", time.Minute) })
	// Its first attempt asks every node, the next (contended) the gate.
	eventually(t, "the waiter's second attempt", func() bool { return probes[gate].count(scripts.Acquire.Name) >= 2 })
	time.Sleep(10 * time.Millisecond) // into its wait
	if err := held.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	obtainedWithin(t, c.clock, got, redlock.SafetyPoll+5*time.Millisecond)
}

// A turn given to a Locker none of whose goroutines waits any more (its
// last waiter gave up while the gate was unreachable, and the queue kept
// it) is passed on at once to the next in line, not left to run out with
// no notice.
func TestUnclaimedTurnIsPassedOn(t *testing.T) {
	gc := newGateCluster(t)
	gate := gc.gateOf(t, gc.locker(t, []int{0, 1, 2, 3, 4}))
	eventually(t, "the queue is empty", func() bool { return len(gc.turnQueue(gate)) == 0 })
	untilQueued := func(n int) { t.Helper(); gc.untilQueued(t, gate, n) }
	newWaiter := func() *redlock.Locker {
		return newLocker(t, gc.clock, gc.poolsIn([]int{0, 1, 2, 3, 4}), redlock.WithNodeTimeout(time.Hour))
	}
	// The first waiter joins the queue, then gives up while the gate
	// fails: its leave is lost, and the queue keeps it.
	ctx, cancel := context.WithCancel(context.Background())
	gone := start(func() (*redlock.Lock, error) { return newWaiter().Obtain(ctx, "g", time.Minute) })
	untilQueued(1)
	gc.nodes[gate].Fail(errDown)
	cancel()
	if r := <-gone; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("the waiter that gave up: %v", r.err)
	}
	time.Sleep(10 * time.Millisecond) // its leave fails
	gc.nodes[gate].Fail(nil)
	if len(gc.turnQueue(gate)) != 1 {
		t.Fatal("the queue lost the waiter that gave up: the test needs it kept")
	}
	gc.clock.Advance(time.Millisecond) // the next arrival comes after it
	next := start(func() (*redlock.Lock, error) { return newWaiter().Obtain(context.Background(), "g", time.Minute) })
	untilQueued(2)
	if err := gc.rival.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The clock stands still: no waiter's timer fires.
	r := within(t, "the next in line obtains the lock", func() result { return <-next })
	if r.err != nil {
		t.Fatal(r.err)
	}
	_ = r.lock.Release(t.Context())
}

// Close takes the Locker out of the turn queues it may still be in.
func TestCloseLeavesTheTurnQueue(t *testing.T) {
	gc := newGateCluster(t)
	gate := gc.gateOf(t, gc.locker(t, []int{0, 1, 2, 3, 4}))
	eventually(t, "the queue is empty", func() bool { return len(gc.turnQueue(gate)) == 0 })
	lk, err := redlock.New(gc.poolsIn([]int{0, 1, 2, 3, 4}), redlock.WithClock(gc.clock), redlock.WithNodeTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gone := start(func() (*redlock.Lock, error) { return lk.Obtain(ctx, "g", time.Minute) })
	gc.untilQueued(t, gate, 1)
	// Its leave is lost while the gate fails.
	gc.nodes[gate].Fail(errDown)
	cancel()
	<-gone
	time.Sleep(10 * time.Millisecond)
	gc.nodes[gate].Fail(nil)
	if len(gc.turnQueue(gate)) != 1 {
		t.Fatal("the queue lost the waiter that gave up: the test needs it kept")
	}
	if err := within(t, "Close", func() error { return lk.Close() }); err != nil {
		t.Fatal(err)
	}
	if q := gc.turnQueue(gate); len(q) != 0 {
		t.Errorf("after Close the turn queue holds %q", q)
	}
}

// Without any node that can send release notices, a waiter polls.
func TestWaiterWithoutNoticesPolls(t *testing.T) {
	c := newCluster(t, 3)
	held := obtainEverywhere(t, c, c.locker(), "g", time.Minute)
	pools := c.pools()
	for i := range pools {
		pools[i] = deaf{pools[i]}
	}
	waiter := newLocker(t, c.clock, pools)
	got := start(func() (*redlock.Lock, error) { return waiter.Obtain(context.Background(), "g", time.Minute) })
	time.Sleep(10 * time.Millisecond) // its first attempts fail
	if err := held.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	obtainedWithin(t, c.clock, got, redlock.SafetyPoll)
}

// obtainedWithin advances fc in small steps, at most by limit, until the
// Obtain behind got returns, and fails t if it fails, or has not returned
// hangBound after the clock reached limit.
func obtainedWithin(t *testing.T, fc *clock.Fake, got <-chan result, limit time.Duration) {
	t.Helper()
	const step = 5 * time.Millisecond
	for waited := time.Duration(0); waited < limit; waited += step {
		select {
		case r := <-got:
			if r.err != nil {
				t.Fatal(r.err)
			}
			_ = r.lock.Release(t.Context())
			return
		case <-time.After(time.Millisecond):
		}
		fc.Advance(step)
	}
	// The clock stops at limit; the waiter may still be on its way to
	// the lock (a slow, raced goroutine), which it then takes in time.
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatal(r.err)
		}
		_ = r.lock.Release(t.Context())
	case <-time.After(hangBound):
		t.Fatalf("the waiter did not obtain the released lock within %v of its clock", limit)
	}
}

// A waiter that the gate granted while another owner holds the other nodes
// (it won them without the gate) is left out of the gate's turn queue, and
// no release the gate names someone else for would be announced to it: it
// tries again at once, to take its place there. It does not go round: while
// that owner holds the lock the gate grants every try, and the notice of
// its own clean-up there must not wake it again; it waits for the owner's
// release.
func TestGrantedByTheGateAloneTriesAgainOnce(t *testing.T) {
	c := newCluster(t, 5)
	rival := obtainEverywhere(t, c, c.locker(), "g", time.Minute)
	gate := gateIndex(len(c.nodes), "g")
	c.nodes[gate].Set(lockKey("g"), "gone", time.Millisecond) // the gate lost the rival's key
	c.clock.Advance(2 * time.Millisecond)
	probes := make([]*probe, len(c.nodes))
	pools := make([]pool.Pool, len(c.nodes))
	for i, n := range c.nodes {
		probes[i] = newProbe(n)
		pools[i] = probes[i]
	}
	waiter := newLocker(t, c.clock, pools)
	got := start(func() (*redlock.Lock, error) { return waiter.Obtain(context.Background(), "g", time.Minute) })
	attempts := func() int { return probes[gate].count(scripts.Acquire.Name) }
	// The first attempt, the one once the subscriptions are up, and the
	// try again at once; the clock stands still, so no timer ends a wait.
	eventually(t, "a third attempt", func() bool { return attempts() >= 3 })
	time.Sleep(100 * time.Millisecond)
	settled := attempts()
	time.Sleep(100 * time.Millisecond)
	// A few: the first, the one once the subscriptions are up, one when
	// the gate becomes audible, the try to join, and on a loaded machine a
	// retry or two for subscriptions that came up during an attempt; not
	// the hundreds or thousands of a waiter going round.
	if n := attempts(); n != settled || n > 20 {
		t.Fatalf("%d attempts, then %d, while the clock stood still: want the waiter waiting", settled, n)
	}
	if err := rival.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Nobody announces that release (the rival held the gate when it
	// obtained the lock, so the other nodes leave the notice to it): the
	// waiter's timer ends its wait.
	obtainedWithin(t, c.clock, got, 2*redlock.SafetyPoll)
}
