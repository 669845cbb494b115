package redlock_test

import (
	"context"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/redlock"
)

func TestFenceIncreasesAcrossNodeFaults(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker(redlock.WithFencing())
	ctx := context.Background()
	var last uint64
	rounds := 0
	// settle waits until every node has received each round's acquire and
	// release (or clean-up): a round is decided without its stragglers, and
	// healing a node under a straggler's feet would grant it late.
	settle := func() {
		t.Helper()
		for _, n := range c.nodes {
			eventually(t, "every node answered every call", func() bool {
				received, _ := n.Calls()
				return n.Finished() >= 2*rounds && n.Finished() == received
			})
		}
	}
	obtain := func(step string) {
		t.Helper()
		// A round is decided by a quorum: let the last one's other calls
		// (a late grant and its clean-up) land first, or the next round
		// may meet them.
		settle()
		rounds++
		l, err := lk.TryObtain(ctx, "x", time.Second)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if l.Fence() <= last {
			t.Fatalf("%s: fence %d after %d: not increasing", step, l.Fence(), last)
		}
		last = l.Fence()
		if err := l.Release(ctx); err != nil {
			t.Fatalf("%s: release: %v", step, err)
		}
	}
	for i := 0; i < 5; i++ {
		obtain("healthy")
	}
	// Node 2 misses some grants, so its counter falls behind.
	settle()
	c.nodes[2].Fail(errDown)
	for i := 0; i < 5; i++ {
		obtain("node 2 down")
	}
	// Node 0 goes, node 2 comes back: the quorum is {1, 2}, whose counters
	// disagree, so the token must be written to node 2 before it is used.
	settle()
	c.nodes[2].Fail(nil)
	c.nodes[0].Fail(errDown)
	obtain("quorum of a current and a stale node")
	if v, _, _ := c.nodes[2].Get("\x00fence:" + redlock.DefaultKeyPrefix); v != "11" {
		t.Fatalf("node 2's counter = %q after the raise, want 11", v)
	}
	// A node outside the last quorum ({1, 2}) wiped by a restart without
	// persistence: every later quorum still meets node 1 or 2. (Wiping a node
	// of the last quorum is outside the assumptions: see internal/sim.)
	settle()
	c.nodes[0].Fail(nil)
	c.nodes[0].Flush()
	obtain("after a wipe of node 0")
	if last != 12 {
		t.Fatalf("fence = %d, want 12 (the count carried by the surviving nodes)", last)
	}
}

func TestFenceOffIsZero(t *testing.T) {
	c := newCluster(t, 3)
	l, err := c.locker().TryObtain(context.Background(), "x", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if l.Fence() != 0 {
		t.Fatalf("Fence() = %d without WithFencing", l.Fence())
	}
}

func TestFenceMonotonicOnRedisWithRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("real Redis")
	}
	srv := redistest.Start(t, 5, "--appendonly", "yes", "--appendfsync", "always")
	lk, err := redlock.New(redistest.Pools(t, srv), redlock.WithFencing())
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	ctx := context.Background()
	const total = 10000
	var last uint64
	releaseErrors := 0
	for i := 0; i < total; i++ {
		switch i {
		case total / 3:
			if err := srv[2].Kill(); err != nil {
				t.Fatal(err)
			}
		case 2 * total / 3:
			if err := srv[2].Start(); err != nil {
				t.Fatal(err)
			}
		}
		l, err := lk.Obtain(ctx, "orders", time.Second)
		if err != nil {
			t.Fatalf("acquisition %d: %v", i, err)
		}
		if l.Fence() <= last {
			t.Fatalf("acquisition %d: fence %d after %d", i, l.Fence(), last)
		}
		last = l.Fence()
		// Under fsync-always a write can stall past the node timeout; a
		// release that misses its quorum leaves keys to expire, which the
		// next Obtain waits out. What this test checks is the fence order.
		if err := l.Release(ctx); err != nil {
			releaseErrors++
			t.Logf("acquisition %d: release: %v", i, err)
		}
	}
	t.Logf("%d acquisitions, last fence %d, %d releases without quorum", total, last, releaseErrors)
}
