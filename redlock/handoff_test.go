package redlock_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/redlock"
)

// waitInLine starts an Obtain on lk and returns once it waits in line (its
// first attempt failed and it subscribed), with the channel of its result.
func waitInLine(t *testing.T, c *cluster, lk *redlock.Locker, name string, ttl time.Duration) <-chan result {
	t.Helper()
	received := func() int {
		total := 0
		for _, n := range c.nodes {
			r, _ := n.Calls()
			total += r
		}
		return total
	}
	before := received()
	ch := start(func() (*redlock.Lock, error) { return lk.Obtain(context.Background(), name, ttl) })
	// Two refused attempts: the first, on every node, and the one right
	// after subscribing, at the gate.
	eventually(t, "the waiter is in line", func() bool { return received() >= before+len(c.nodes)+1 })
	time.Sleep(2 * time.Millisecond)
	return ch
}

func TestReleaseHandsOverToAWaiterOfTheSameLocker(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker()
	ctx := context.Background()
	const ttl = 10 * time.Second
	// Every node's call is in before the waiter's are counted.
	a := obtainEverywhere(t, c, lk, "x", ttl)
	got := waitInLine(t, c, lk, "x", ttl)
	calls, _ := c.nodes[0].Calls()
	if err := a.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	r := within(t, "the waiter", func() result { return <-got })
	if r.err != nil {
		t.Fatal(r.err)
	}
	b := r.lock
	if after, _ := c.nodes[0].Calls(); after != calls {
		t.Errorf("the hand-over made %d calls to a node, want none", after-calls)
	}
	if b.Token() != a.Token() || !b.ValidUntil().Equal(a.ValidUntil()) {
		t.Errorf("handed lock: token %s valid until %v; holder had %s, %v", b.Token(), b.ValidUntil(), a.Token(), a.ValidUntil())
	}
	if !errors.Is(a.Err(), redlock.ErrReleased) || b.Err() != nil {
		t.Errorf("old lock Err = %v, new lock Err = %v", a.Err(), b.Err())
	}
	for _, n := range c.nodes {
		if v, _, ok := n.Get(lockKey("x")); !ok || v != a.Token() {
			t.Fatalf("%s: key %q, %v; the nodes must go on holding the lock", n.Addr(), v, ok)
		}
	}
	// The waiter had joined the gate's turn queue: with nobody left in
	// line, the Locker leaves it, so that no release is promised to it.
	eventually(t, "the Locker left the turn queue", func() bool {
		for _, n := range c.nodes {
			if len(n.Queue("\x00turn:"+lockKey("x"))) > 0 {
				return false
			}
		}
		return true
	})
	// With nobody in line, the release is a real one.
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		eventually(t, "key deleted", func() bool { v, _, _ := n.Get(lockKey("x")); return v != b.Token() })
	}
}

func TestNoHandOver(t *testing.T) {
	const ttl = 10 * time.Second
	tests := []struct {
		name    string
		opts    []redlock.Option
		advance time.Duration // fake time between the grant and the release
		wantTTL time.Duration // the waiter's TTL
	}{
		{"fencing", []redlock.Option{redlock.WithFencing()}, 0, ttl},
		{"turned off", []redlock.Option{redlock.WithoutLocalHandoff()}, 0, ttl},
		{"past the hand-over window", nil, redlock.LocalHandoffWindow, ttl},
		{"less than half the waiter's TTL left", nil, 0, 3 * ttl},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, 3)
			lk := c.locker(tt.opts...)
			ctx := context.Background()
			a := obtainEverywhere(t, c, lk, "x", ttl)
			got := waitInLine(t, c, lk, "x", tt.wantTTL)
			c.clock.Advance(tt.advance)
			if err := a.Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}
			r := within(t, "the waiter", func() result { return <-got })
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.lock.Token() == a.Token() {
				t.Fatal("the lock was handed over")
			}
			if len(tt.opts) == 1 && r.lock.Fence() != 0 && r.lock.Fence() <= a.Fence() {
				t.Errorf("fence %d after %d", r.lock.Fence(), a.Fence())
			}
		})
	}
}

// Goroutines of one Locker that give up while locks are handed around never
// strand a lock: at the end the lock is free.
func TestHandOverToLeavingWaitersStrandsNothing(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker()
	var holders, overlaps atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*100*time.Microsecond)
				l, err := lk.Obtain(ctx, "x", time.Minute)
				cancel()
				if err != nil {
					continue
				}
				if holders.Add(1) != 1 {
					overlaps.Add(1)
				}
				holders.Add(-1)
				_ = l.Release(context.Background())
			}
		}()
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d overlapping holders", n)
	}
	eventually(t, "the lock is free again", func() bool {
		l, err := lk.TryObtain(context.Background(), "x", time.Minute)
		if err != nil {
			return false
		}
		_ = l.Release(context.Background())
		return true
	})
}
