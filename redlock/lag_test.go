package redlock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/redlock"
)

// A node whose answers come far behind the others' is spared by new
// acquisitions while a vote is left to spare; a round that fails for want of
// votes asks it again; once a second, one acquisition probes it, and an
// answer in time ends the lag.
func TestLaggingNodeIsSpared(t *testing.T) {
	const delay = 20 * time.Millisecond
	c := newCluster(t, 5)
	slow := c.nodes[4]
	// One node refuses connections throughout: every round then waits for
	// all three others, and none of their answers is read after the test
	// moves the clock on for the slow node (which would count as their
	// latency). It still counts as a vote to spare: errors do not pause a
	// node, timeouts do.
	broken := errors.New("connection refused")
	c.nodes[3].Fail(broken)
	lagging, caughtUp := make(chan struct{}, 8), make(chan struct{}, 8)
	counted := newProbe(slow)
	pools := c.pools()
	pools[4] = counted
	// The node timeout is longer than the test's moves of the clock: a
	// call whose goroutine starts after a move must not time out.
	lk := newLocker(t, c.clock, pools, redlock.WithNodeTimeout(5*time.Second), redlock.WithBackoff(redlock.NoRetry()), redlock.WithObserver(func(e redlock.Event) {
		if e.Node != slow.Addr() {
			return
		}
		switch e.Kind {
		case redlock.EventNodeLagging:
			lagging <- struct{}{}
		case redlock.EventNodeCaughtUp:
			caughtUp <- struct{}{}
		}
	}))
	calls := func() int { n, _ := slow.Calls(); return n }
	// A round's clean-up may reach the node after the next round began:
	// count the acquisitions that asked it.
	asked := func() int { return counted.count(scripts.Acquire.Name) }
	// drain lets every call the slow node received finish, moving the
	// clock on to the end of each one's delay once it waits for it.
	drain := func() {
		t.Helper()
		eventually(t, "the slow node's calls finish", func() bool {
			if slow.Finished() == calls() {
				return true
			}
			if at, ok := c.clock.NextDeadline(); ok && at.Sub(c.clock.Now()) <= delay {
				c.clock.Set(at)
			}
			return false
		})
	}
	round := func(name string) {
		t.Helper()
		l, err := lk.TryObtain(context.Background(), name, time.Minute)
		if err != nil {
			t.Fatalf("TryObtain(%s): %v", name, err)
		}
		if err := l.Release(context.Background()); err != nil {
			t.Fatalf("Release(%s): %v", name, err)
		}
		drain()
	}

	// untilLagging makes rounds until the node's average has climbed past
	// the bar, one slow answer at a time.
	untilLagging := func() {
		t.Helper()
		for found := false; !found; {
			if calls() > 100 {
				t.Fatal("the node was never found lagging")
			}
			round("a")
			select {
			case <-lagging:
				found = true
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	round("warm-up") // every node answers at once: its average starts there
	slow.SetDelay(delay)
	untilLagging()
	before := asked()
	round("b")
	if n := asked() - before; n != 0 {
		t.Fatalf("the lagging node was asked %d times, want none", n)
	}

	// The delay ends, but only a probe can tell.
	slow.SetDelay(0)
	round("c")
	if n := asked() - before; n != 0 {
		t.Fatalf("the lagging node was asked %d times before its probe, want none", n)
	}
	c.clock.Advance(time.Second)
	round("d") // the probe: asked, and answered at once
	recv(t, "the node catches up", caughtUp)
	round("e")
	// A round may end before its call to the fifth node is made.
	eventually(t, "the node is asked again", func() bool { return asked()-before == 2 })

	// Lagging again, when a second node fails: a round falls short of a
	// quorum without the lagging node, and the next one asks it.
	slow.SetDelay(delay)
	untilLagging()
	c.nodes[2].Fail(broken)
	var sent [2]int
	for i := range sent {
		sent[i], _ = c.nodes[i].Calls()
	}
	if _, err := lk.TryObtain(context.Background(), "f", time.Minute); !errors.Is(err, redlock.ErrNoQuorum) {
		t.Fatalf("TryObtain with 2 nodes failing and 1 spared = %v, want ErrNoQuorum", err)
	}
	// The round failed before the two healthy nodes answered; each is
	// cleaned up once it has.
	eventually(t, "the failed attempt's clean-up", func() bool {
		for i, n := range sent {
			if got, _ := c.nodes[i].Calls(); got < n+2 || c.nodes[i].Finished() < got {
				return false
			}
		}
		return true
	})
	before, received := asked(), calls()
	res := start(func() (*redlock.Lock, error) { return lk.TryObtain(context.Background(), "f", time.Minute) })
	eventually(t, "the lagging node is asked", func() bool { return calls() > received })
	drain()
	r := recv(t, "the attempt that asks the lagging node", res)
	if r.err != nil {
		t.Fatalf("TryObtain with the lagging node asked: %v", r.err)
	}
	if n := asked() - before; n != 1 {
		t.Fatalf("the lagging node was asked %d times, want once", n)
	}
	// Its release needs the lagging node's vote too.
	received = calls()
	released := make(chan error, 1)
	go func() { released <- r.lock.Release(context.Background()) }()
	eventually(t, "the release reaches the lagging node", func() bool { return calls() > received })
	drain()
	if err := recv(t, "the release", released); err != nil {
		t.Fatalf("Release(f): %v", err)
	}
}
