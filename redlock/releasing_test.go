package redlock_test

import (
	"context"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/redlock"
)

// A Locker that obtains a lock again while its release of the lock has not
// answered on a node spares that node, if a quorum and one more nodes whose
// votes it can count on are still asked; once the release has answered, the
// node is asked again.
func TestReleasingNodeIsSpared(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nodes   int
		failing int // a node refusing connections, or -1
		spared  bool
	}{
		{name: "five nodes", nodes: 5, failing: -1, spared: true},
		{name: "three nodes: no vote to spare", nodes: 3, failing: -1, spared: false},
		{name: "five nodes, one failing: no vote to spare", nodes: 5, failing: 0, spared: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, tc.nodes)
			if tc.failing >= 0 {
				c.nodes[tc.failing].Fail(errRefused)
			}
			last := c.nodes[tc.nodes-1]
			lk := c.locker(redlock.WithNodeTimeout(time.Hour))
			ctx := context.Background()
			obtain := func() *redlock.Lock {
				t.Helper()
				l := within(t, "Obtain", func() result {
					l, err := lk.Obtain(ctx, "r", time.Minute)
					return result{l, err}
				})
				if l.err != nil {
					t.Fatal(l.err)
				}
				return l.lock
			}
			calls := func() int { n, _ := last.Calls(); return n }
			l := obtain()
			eventually(t, "the last node answered", func() bool { return last.Finished() == 1 })
			last.Hang()
			if err := within(t, "Release", func() error { return l.Release(ctx) }); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the release reached the last node", func() bool { return calls() == 2 })
			// The release returned with a quorum: let its calls to the
			// other nodes end, so that the last node's is the only one
			// still on its way. Their goroutines note it just after the
			// node counts the call finished.
			for _, n := range c.nodes[:tc.nodes-1] {
				eventually(t, "the other nodes' releases ended", func() bool { return n.Finished() == 2 })
			}
			time.Sleep(20 * time.Millisecond)

			l = obtain()
			if !tc.spared {
				eventually(t, "the last node is asked", func() bool { return calls() == 3 })
			}
			if err := within(t, "Release", func() error { return l.Release(ctx) }); err != nil {
				t.Fatal(err)
			}
			last.Unhang()
			eventually(t, "the last node's calls finished", func() bool { return last.Finished() == calls() })
			if tc.spared && calls() != 2 {
				t.Fatalf("the last node received %d calls, want 2: the second attempt was to spare it", calls())
			}

			// Its release answered: the next attempt asks it.
			before := calls()
			l = obtain()
			eventually(t, "the last node is asked again", func() bool { return calls() > before })
			if err := within(t, "Release", func() error { return l.Release(ctx) }); err != nil {
				t.Fatal(err)
			}
		})
	}
}
