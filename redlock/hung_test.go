package redlock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/redlock"
)

// Hung nodes: a SIGSTOPped redis-server keeps its connections open and never
// answers, the worst a node can do to a caller's deadline. Every call must
// come back by the caller's deadline plus the time to hand the result back.

// hungDeadline is the caller's deadline in these tests: far below the node
// timeout of a 10s lock (1s), so that only the context can end the call.
const hungDeadline = 100 * time.Millisecond

// hungSlack is how late past its deadline a call may return before the test
// fails. It is generous on purpose (a loaded CI machine); the figures the
// test logs are what to look at.
const hungSlack = time.Second

func TestHungNodesNeverHoldACallPastItsDeadline(t *testing.T) {
	const ttl = 10 * time.Second
	tests := []struct {
		name   string
		paused []int // of 3 nodes
		// succeed: a quorum is up, so every call succeeds (before the
		// deadline).
		succeed bool
	}{
		{"one of three paused", []int{2}, true},
		{"majority paused", []int{1, 2}, false},
		{"all paused", []int{0, 1, 2}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers := redistest.Start(t, 3)
			lk := adminLocker(t, servers)
			setup, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			toRelease, err := lk.Obtain(setup, "hung-release", ttl)
			if err != nil {
				t.Fatal(err)
			}
			toExtend, err := lk.Obtain(setup, "hung-extend", ttl)
			if err != nil {
				t.Fatal(err)
			}
			heldEverywhere(t, servers, toRelease, toExtend)

			for _, i := range tt.paused {
				if err := servers[i].Pause(); err != nil {
					t.Fatal(err)
				}
				// Resumed before the servers are killed and the Locker
				// closed (cleanups run last-in first-out).
				t.Cleanup(func() { _ = servers[i].Resume() })
			}

			calls := []struct {
				op string
				f  func(ctx context.Context) error
			}{
				{"Obtain", func(ctx context.Context) error {
					l, err := lk.Obtain(ctx, "hung-obtain", ttl)
					if err == nil {
						_ = l.Release(context.Background())
					}
					return err
				}},
				{"TryObtain", func(ctx context.Context) error {
					l, err := lk.TryObtain(ctx, "hung-try", ttl)
					if err == nil {
						_ = l.Release(context.Background())
					}
					return err
				}},
				{"Extend", func(ctx context.Context) error { return toExtend.Extend(ctx, ttl) }},
				{"Release", func(ctx context.Context) error { return toRelease.Release(ctx) }},
				{"Check", func(ctx context.Context) error { _, err := lk.Check(ctx); return err }},
			}
			for _, c := range calls {
				ctx, cancel := context.WithTimeout(context.Background(), hungDeadline)
				start := time.Now()
				err := c.f(ctx)
				elapsed := time.Since(start)
				cancel()
				t.Logf("%-9s returned after %7v (deadline %v, %+v past it): %v",
					c.op, elapsed.Round(time.Microsecond), hungDeadline, (elapsed - hungDeadline).Round(time.Microsecond), err)
				if elapsed > hungDeadline+hungSlack {
					t.Errorf("%s returned %v after its %v deadline", c.op, elapsed-hungDeadline, hungDeadline)
				}
				switch {
				case c.op == "Check":
					// Check reports hung nodes; it fails only when the
					// caller's context ended first.
				case tt.succeed && err != nil:
					t.Errorf("%s with a quorum up: %v", c.op, err)
				case !tt.succeed && err == nil:
					t.Errorf("%s succeeded with a majority of nodes hung", c.op)
				case c.op == "Obtain" && !tt.succeed && !errors.Is(err, context.DeadlineExceeded):
					t.Errorf("Obtain ended by its deadline reports %v, not the context's error", err)
				}
			}
		})
	}
}

func TestHungNodeDoesNotDelayCloseBeyondTheNodeTimeout(t *testing.T) {
	servers := redistest.Start(t, 3)
	const nodeTimeout = 200 * time.Millisecond
	lk, err := redlock.New(redistest.Pools(t, servers), redlock.WithNodeTimeout(nodeTimeout))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := lk.Obtain(ctx, "hung-close", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	heldEverywhere(t, servers, l)
	if err := servers[2].Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = servers[2].Resume() })
	// The release is decided by the two live nodes; the call to the hung one
	// lingers until its node timeout, and Close waits for it.
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release with one node hung: %v", err)
	}
	start := time.Now()
	if err := lk.Close(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	t.Logf("Close returned after %v (node timeout %v)", elapsed.Round(time.Microsecond), nodeTimeout)
	if elapsed > nodeTimeout+hungSlack {
		t.Errorf("Close took %v with a node timeout of %v", elapsed, nodeTimeout)
	}
}

// heldEverywhere waits until every server holds every lock: Obtain returns
// once a quorum answered, and Release and Extend go only to the nodes whose
// acquire had answered by then (the others clean up when they answer), so a
// node still answering when another is paused would leave no quorum to ask.
func heldEverywhere(t *testing.T, servers []*redistest.Server, locks ...*redlock.Lock) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range servers {
		for _, l := range locks {
			for {
				v, _ := redisDo(t, s, "GET", redlock.DefaultKeyPrefix+l.Name()).([]byte)
				if string(v) == l.Token() {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s does not hold %q", s.Addr, l.Name())
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
}

// A round ended by the caller's deadline reports the context's error, not
// ErrNoQuorum: redigo turns the deadline into a socket deadline, which can
// fail every node with an i/o timeout before the round sees ctx.Done.
func TestHungMajorityReportsTheContextError(t *testing.T) {
	servers := redistest.Start(t, 3)
	// No call runs out a node timeout while the tries last: the hung nodes
	// are never skipped (silence.go), and every round is ended by its
	// caller's deadline.
	lk := adminLocker(t, servers, redlock.WithNodeTimeout(time.Minute))
	setup, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := lk.Obtain(setup, "hung-ctx-extend", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	heldEverywhere(t, servers, l)
	for _, s := range servers[1:] {
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Resume() })
	}
	// The race is between the read deadline and ctx.Done: a few tries
	// show it.
	const tries = 10
	for i := range tries {
		for _, op := range []struct {
			name string
			f    func(ctx context.Context) error
		}{
			{"TryObtain", func(ctx context.Context) error {
				_, err := lk.TryObtain(ctx, "hung-ctx-try", 10*time.Second)
				return err
			}},
			{"Extend", func(ctx context.Context) error { return l.Extend(ctx, 10*time.Second) }},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), hungDeadline)
			err := op.f(ctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("try %d: %s ended by its deadline reports %v", i, op.name, err)
			}
		}
	}
}
