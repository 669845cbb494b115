package redlock_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/redlock"
)

// A SIGSTOPped redis-server carries out the calls it holds once it is
// resumed, those that ran out their node timeout meanwhile included: the
// acquire call of a lock released since then sets the key after the release
// skipped the paused node. The release is owed to the node, and reaches it
// once it answers again: the key does not refuse every contender there
// until its TTL runs out.
func TestOwedReleaseFreesAHungNodeThatComesBack(t *testing.T) {
	const ttl = time.Minute
	servers := redistest.Start(t, 3)
	hung := servers[2]
	lk := adminLocker(t, servers, redlock.WithNodeTimeout(200*time.Millisecond))
	ctx := context.Background()
	tryRound(t, lk, "warm-up") // connections open, scripts loaded

	if err := hung.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hung.Resume() })
	l, err := lk.TryObtain(ctx, "owed", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// The hung node's acquire call runs out its node timeout: the node is
	// paused for a second, and the release meant for it is owed.
	time.Sleep(600 * time.Millisecond)
	if err := hung.Resume(); err != nil {
		t.Fatal(err)
	}
	key := redlock.DefaultKeyPrefix + "owed"
	// The late acquire call runs now; the owed release follows once the
	// node's pause (a second from its timeout) is over.
	if v, _ := redisDo(t, hung, "GET", key).([]byte); string(v) != l.Token() {
		t.Fatalf("the resumed node holds %q, want the released lock's token: the late acquire call did not run after the release", v)
	}
	deadline := time.Now().Add(ttl / 3)
	for {
		v, _ := redisDo(t, hung, "GET", key).([]byte)
		if string(v) != l.Token() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the resumed node still holds the released lock's key %v after its resumption (TTL %v)", ttl/3, ttl)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The lock is free on every node: another Locker gets all three votes.
	other := adminLocker(t, servers)
	l2, err := other.TryObtain(ctx, "owed", ttl)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l2.Release(ctx) }()
	if v, _ := redisDo(t, hung, "GET", key).([]byte); string(v) != l2.Token() {
		t.Fatalf("the resumed node holds %q, want the new owner's token", v)
	}
}

// Releases owed to a node are paid in batches once its pause is over: every
// one reaches it, a batch at a time.
func TestOwedReleasesArePaidInBatches(t *testing.T) {
	const held = 100 // more than a batch
	c := newCluster(t, 3)
	lk := c.locker(redlock.WithNodeTimeout(100*time.Millisecond), redlock.WithBackoff(redlock.NoRetry()))
	node := c.nodes[2]
	calls := func() int { n, _ := node.Calls(); return n }
	locks := make([]*redlock.Lock, held)
	for k := range locks {
		locks[k] = obtainEverywhere(t, c, lk, "owed-"+strconv.Itoa(k), time.Minute)
	}
	// The node hangs, and a call runs out the node timeout: it is paused,
	// and that attempt's clean-up is owed to it (armed a second ahead).
	node.Hang()
	tryRound(t, lk, "probe")
	c.clock.Advance(100 * time.Millisecond)
	eventually(t, "the probe's clean-up is owed", func() bool {
		next, ok := c.clock.NextDeadline()
		return ok && next.Sub(c.clock.Now()) > 900*time.Millisecond
	})
	// Every release skips the paused node: each is owed to it.
	for _, l := range locks {
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	node.Unhang()
	before := calls()
	c.clock.Advance(time.Second)
	eventually(t, "the first batch reaches the node", func() bool { return calls() == before+64 })
	time.Sleep(10 * time.Millisecond)
	if n := calls() - before; n != 64 {
		t.Fatalf("%d releases reached the node in the first payment, want a batch of 64", n)
	}
	c.clock.Advance(100 * time.Millisecond)
	eventually(t, "the rest reach the node", func() bool { return calls() == before+held+1 })
}
