package redlock_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/memnode"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// skewCluster is a cluster whose nodes each keep their own clock.
type skewCluster struct {
	*cluster
	clocks []*memnode.SkewClock
}

func newSkewCluster(t *testing.T, n int) *skewCluster {
	c := &skewCluster{cluster: &cluster{t: t, clock: clock.NewFake(epoch)}}
	for i := range n {
		sc := memnode.NewSkewClock(c.clock)
		c.clocks = append(c.clocks, sc)
		c.nodes = append(c.nodes, memnode.New(fmt.Sprintf("10.0.1.%d:6379", i+1), sc))
	}
	return c
}

// holdOnTwo makes holder obtain "x" on nodes 0 and 1 only (node 2 is down
// meanwhile), the setting of Redlock's restart and clock-jump hazards: node
// 0 then forgets the lock, and node 2 is free.
func holdOnTwo(t *testing.T, c *cluster, holder *redlock.Locker, ttl time.Duration) *redlock.Lock {
	t.Helper()
	c.nodes[2].Fail(errDown)
	before, _ := c.nodes[2].Calls()
	l, err := holder.TryObtain(context.Background(), "x", ttl)
	if err != nil {
		t.Fatal(err)
	}
	// The round was decided without node 2: heal it only once the holder's
	// call has reached it (and so has seen it failed).
	eventually(t, "node 2 received the holder's call", func() bool { n, _ := c.nodes[2].Calls(); return n > before })
	c.nodes[2].Fail(nil)
	return l
}

// warmUp lets lk see every node and then lets the boot markers age past the
// quarantine, as in a cluster that has run for a while.
func warmUp(t *testing.T, c *cluster, lks ...*redlock.Locker) {
	t.Helper()
	const rounds = 3
	for r := 0; r < rounds; r++ {
		for _, lk := range lks {
			// A name of its own: a round finding the last one's key
			// still on a node would be refused there, and not release it.
			l, err := lk.TryObtain(context.Background(), fmt.Sprintf("warm-up-%d-%p", r, lk), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_ = l.Release(context.Background())
		}
	}
	// Each round is an acquire and a release (or clean-up) on every node,
	// stragglers included: wait for all of them before time moves on.
	for _, n := range c.nodes {
		eventually(t, "every node answered the warm-up", func() bool { got, _ := n.Calls(); return got >= 2*rounds*len(lks) })
	}
	c.clock.Advance(time.Minute)
}

func TestRestartQuarantine(t *testing.T) {
	const ttl = 10 * time.Second
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("quarantine=%v", on), func(t *testing.T) {
			c := newCluster(t, 3)
			var opts []redlock.Option
			if !on {
				opts = append(opts, redlock.WithoutRestartQuarantine())
			}
			var events []redlock.Event
			var mu sync.Mutex
			observe := redlock.WithObserver(func(e redlock.Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
			holder, rival := c.locker(opts...), c.locker(append(opts, observe)...)
			warmUp(t, c, holder, rival)
			holdOnTwo(t, c, holder, ttl)
			c.nodes[0].Flush() // restarted without persistence: the lock and the marker are gone

			_, err := rival.TryObtain(context.Background(), "x", ttl)
			if !on {
				if err != nil {
					t.Fatalf("without quarantine the rival should obtain the lock (the known hazard), got %v", err)
				}
				return
			}
			// The quarantined node counts as failing: one refusal of three
			// would not have blocked a quorum by itself.
			if !errors.Is(err, redlock.ErrNoQuorum) {
				t.Fatalf("rival TryObtain = %v, want ErrNoQuorum: the wiped node's vote must be discarded", err)
			}
			qe := quorumError(t, err)
			if !strings.Contains(qe.Votes[0].Discarded, "lost its data") {
				t.Fatalf("node 0's vote = %+v, want discarded for lost data", qe.Votes[0])
			}
			mu.Lock()
			discarded := 0
			for _, e := range events {
				if e.Kind == redlock.EventVoteDiscarded {
					discarded++
				}
			}
			mu.Unlock()
			if discarded == 0 {
				t.Fatal("no EventVoteDiscarded reported")
			}
			// Once the quarantine is over (the forgotten lock has expired by
			// then), the node counts again.
			c.clock.Advance(ttl + time.Second)
			if _, err := rival.TryObtain(context.Background(), "x", ttl); err != nil {
				t.Fatalf("after the quarantine: %v", err)
			}
		})
	}
}

func TestFreshClusterIsNotQuarantined(t *testing.T) {
	c := newCluster(t, 5)
	if _, err := c.locker().TryObtain(context.Background(), "x", time.Minute); err != nil {
		t.Fatalf("first lock on a new cluster: %v", err)
	}
}

func TestClockJumpQuarantine(t *testing.T) {
	const ttl = 10 * time.Second
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("detection=%v", on), func(t *testing.T) {
			c := newSkewCluster(t, 3)
			var opts []redlock.Option
			if !on {
				opts = append(opts, redlock.WithoutClockJumpDetection())
			}
			holder, rival := c.locker(opts...), c.locker(opts...)
			warmUp(t, c.cluster, holder, rival)
			holdOnTwo(t, c.cluster, holder, ttl)
			c.clocks[0].Jump(2 * ttl) // node 0's clock leaps: the holder's key there expires at once

			_, err := rival.TryObtain(context.Background(), "x", ttl)
			if !on {
				if err != nil {
					t.Fatalf("without detection the rival should obtain the lock (the known hazard), got %v", err)
				}
				return
			}
			if !errors.Is(err, redlock.ErrNoQuorum) {
				t.Fatalf("rival TryObtain = %v, want ErrNoQuorum: the jumped node's vote must be discarded", err)
			}
			if qe := quorumError(t, err); !strings.Contains(qe.Votes[0].Discarded, "clock jumped") {
				t.Fatalf("node 0's vote = %+v, want discarded for a clock jump", qe.Votes[0])
			}
		})
	}
}

// TestClockSetBackOrDataLost tells a node's clock set back from a node that
// lost its data: both move its boot marker's birth later, but only a new
// marker was born after the node's last reply.
func TestClockSetBackOrDataLost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(c *skewCluster)
		want  redlock.EventKind
		why   string
	}{
		{"clock set back", func(c *skewCluster) { c.clocks[0].Jump(-time.Hour) }, redlock.EventClockJump, "clock jumped by -1h"},
		{"data lost", func(c *skewCluster) { c.nodes[0].Flush() }, redlock.EventQuarantined, "lost its data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newSkewCluster(t, 3)
			var mu sync.Mutex
			var kinds []redlock.EventKind
			observe := redlock.WithObserver(func(e redlock.Event) {
				if e.Kind == redlock.EventClockJump || e.Kind == redlock.EventQuarantined {
					mu.Lock()
					kinds = append(kinds, e.Kind)
					mu.Unlock()
				}
			})
			lk := c.locker(observe)
			warmUp(t, c.cluster, lk)
			c.clock.Advance(2 * time.Hour) // the marker is older than the jump
			warmUp(t, c.cluster, lk)
			tc.fault(c)
			c.nodes[2].Fail(errDown) // node 0's vote decides
			_, err := lk.TryObtain(context.Background(), "x", time.Minute)
			if !errors.Is(err, redlock.ErrNoQuorum) {
				t.Fatalf("TryObtain = %v, want ErrNoQuorum: node 0's vote must be discarded", err)
			}
			if v := quorumError(t, err).Votes[0]; !strings.Contains(v.Discarded, tc.why) {
				t.Errorf("node 0's vote = %+v, want discarded for %q", v, tc.why)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(kinds, []redlock.EventKind{tc.want}) {
				t.Errorf("events %v, want only %v", kinds, tc.want)
			}
		})
	}
}

func TestSlowDriftWithinFactorIsNotAJump(t *testing.T) {
	c := newSkewCluster(t, 3)
	lk := c.locker()
	for i := range c.clocks {
		c.clocks[i].SetRate(1 + redlock.DefaultDriftFactor/2)
	}
	for i := 0; i < 20; i++ {
		l, err := lk.TryObtain(context.Background(), "x", time.Second)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		_ = l.Release(context.Background())
		c.clock.Advance(10 * time.Second)
	}
}

// compile-time check that the skew cluster's nodes are pools.
var _ pool.Pool = (*memnode.Node)(nil)
