package integration

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/redlock"
)

// Scenario 3: with a majority of nodes gone, Obtain cannot succeed, must say
// why (no quorum) and must return by its context's deadline, whether the
// nodes are dead (connections refused) or hung (paused: connections open,
// no answer).
func TestMajorityDownFailsWithNoQuorum(t *testing.T) {
	c := startCluster(t, Config{Nodes: 5})
	clients := newClients(t, c, contenders)
	majority := c.Nodes()[:3]
	ctx := context.Background()

	// The cluster works before the fault: otherwise the failures below
	// would prove nothing about the fault.
	for i, cl := range clients {
		lock, err := cl.TryObtain(ctx, "majority", time.Second)
		if err != nil {
			t.Fatalf("client %d on the healthy cluster: %v", i, err)
		}
		if err := lock.Release(ctx); err != nil {
			t.Fatalf("client %d release on the healthy cluster: %v", i, err)
		}
	}

	phases := []struct {
		name       string
		fault, fix func(*Node) error
	}{
		{"paused", func(n *Node) error { return n.Pause(ctx) }, func(n *Node) error { return n.Unpause(ctx) }},
		{"killed", func(n *Node) error { return n.Kill(ctx) }, nil},
	}
	for _, ph := range phases {
		t.Run(ph.name, func(t *testing.T) {
			if err := each(majority, ph.fault); err != nil {
				t.Fatal(err)
			}
			if ph.fix != nil {
				defer func() {
					if err := each(majority, ph.fix); err != nil {
						t.Error(err)
					}
				}()
			}
			requireNoQuorum(t, clients)
		})
	}
}

// requireNoQuorum has every client try, concurrently, both one attempt and
// an Obtain that retries until its deadline, and checks that each fails with
// ErrNoQuorum within a little more than its deadline.
func requireNoQuorum(t *testing.T, clients []*Client) {
	t.Helper()
	const (
		ttl      = time.Second
		deadline = 1500 * time.Millisecond
		// grace covers scheduling on a loaded machine; a call stuck on a
		// hung node would take its TTL or the connection's read timeout
		// (3s), far more.
		grace = 500 * time.Millisecond
	)
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			lock, err := cl.TryObtain(context.Background(), "majority", ttl)
			took := time.Since(start)
			var qe *redlock.QuorumError
			switch {
			case lock != nil:
				t.Errorf("client %d: TryObtain succeeded without a quorum", i)
			case !errors.Is(err, redlock.ErrNoQuorum) || !errors.As(err, &qe):
				t.Errorf("client %d: TryObtain = %v, want a *QuorumError matching ErrNoQuorum", i, err)
			case took > ttl:
				t.Errorf("client %d: TryObtain took %v, more than the TTL %v", i, took, ttl)
			}

			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start = time.Now()
			lock, err = cl.Obtain(ctx, "majority", ttl)
			took = time.Since(start)
			switch {
			case lock != nil:
				t.Errorf("client %d: Obtain succeeded without a quorum", i)
			case !errors.Is(err, redlock.ErrNoQuorum):
				t.Errorf("client %d: Obtain = %v, want an error matching ErrNoQuorum", i, err)
			case took > deadline+grace:
				t.Errorf("client %d: Obtain returned after %v, its deadline was %v", i, took, deadline)
			default:
				t.Logf("client %d: Obtain failed after %v: %v", i, took.Round(time.Millisecond), err)
			}
		}()
	}
	wg.Wait()
}
