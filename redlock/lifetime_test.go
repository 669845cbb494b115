package redlock_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/redlock"
)

// stepUntil advances the fake clock in steps, waiting after each step until
// check holds (the renewer has caught up), until the clock reaches end.
func stepUntil(t *testing.T, c *cluster, end time.Time, step time.Duration, check func() bool) {
	t.Helper()
	for c.clock.Now().Before(end) {
		c.clock.Advance(step)
		eventually(t, "renewer keeps up", check)
	}
}

func TestKeepAliveHoldsPastTTL(t *testing.T) {
	c := newCluster(t, 3)
	// The test moves the clock while renewals are on their way: a node
	// timeout on that clock would fail them for want of a goroutine slice.
	owner, rival := c.locker(redlock.WithNodeTimeout(time.Hour)), c.locker()
	ctx := context.Background()
	const ttl = 3 * time.Second
	// Every node holds the lock (and has seen this cluster's boot marker)
	// before the clock moves: a straggler cancelled by the fake clock's
	// node timeout would leave a node that looks newly started to the
	// rival.
	l := obtainEverywhere(t, c, owner, "job", ttl)
	if err := l.KeepAlive(); err != nil {
		t.Fatal(err)
	}
	end := c.clock.Now().Add(5 * ttl)
	// Renewal is due when a third of the TTL has passed; the check leaves
	// it another third, as the test moves the clock on while a renewal is
	// on its way.
	stepUntil(t, c, end, 100*time.Millisecond, func() bool { return l.TTL() > ttl/3 })
	if err := l.Err(); err != nil {
		t.Fatalf("lock ended while kept alive: %v", err)
	}
	if _, err := rival.TryObtain(ctx, "job", ttl); !errors.Is(err, redlock.ErrHeld) {
		t.Fatalf("rival TryObtain after 5 TTLs = %v, want ErrHeld", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if _, err := rival.TryObtain(ctx, "job", ttl); err != nil {
		t.Fatalf("rival TryObtain after release: %v", err)
	}
}

func TestDoCancelsBeforeValidityWhenMajorityLost(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker()
	const ttl = 3 * time.Second
	type seen struct {
		at         time.Time
		validUntil time.Time
		cause      error
	}
	got := make(chan seen, 1)
	started := make(chan *redlock.Lock, 1)
	done := make(chan error, 1)
	go func() {
		done <- lk.Do(context.Background(), "job", ttl, func(ctx context.Context) error {
			dl, _ := ctx.Deadline()
			started <- nil
			<-ctx.Done()
			got <- seen{at: c.clock.Now(), validUntil: dl, cause: context.Cause(ctx)}
			return ctx.Err()
		})
	}()
	<-started
	c.nodes[0].Fail(errDown)
	c.nodes[1].Fail(errDown)
	var s seen
	for s.at.IsZero() {
		select {
		case s = <-got:
		case <-time.After(time.Millisecond):
			c.clock.Advance(50 * time.Millisecond)
		}
	}
	if !errors.Is(s.cause, redlock.ErrLost) || !strings.Contains(s.cause.Error(), "renewal failed") {
		t.Fatalf("cause = %v, want ErrLost from a failed renewal", s.cause)
	}
	if !s.at.Before(s.validUntil) {
		t.Fatalf("fn's context ended at %v, not before the validity %v", s.at.Sub(epoch), s.validUntil.Sub(epoch))
	}
	err := within(t, "Do", func() error { return <-done })
	if !errors.Is(err, redlock.ErrLost) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %v, want fn's error joined with ErrLost", err)
	}
}

func TestKeepAliveLimits(t *testing.T) {
	const ttl = 3 * time.Second
	tests := []struct {
		name    string
		opt     redlock.KeepAliveOption
		maxEnd  time.Duration // from acquisition
		wantMsg string
	}{
		{"max hold", redlock.WithMaxHold(7 * time.Second), 7*time.Second + ttl, "maximum hold time"},
		{"max extensions", redlock.WithMaxExtensions(2), 3*ttl + ttl, "after 2 extensions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, 3)
			lk := c.locker()
			start := c.clock.Now()
			l, err := lk.Obtain(context.Background(), "job", ttl)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.KeepAlive(tt.opt); err != nil {
				t.Fatal(err)
			}
			for {
				select {
				case <-l.Done():
				default:
					c.clock.Advance(50 * time.Millisecond)
					time.Sleep(200 * time.Microsecond) // let the renewer run between steps
					if c.clock.Since(start) > 10*ttl {
						t.Fatalf("lock still held after %v", c.clock.Since(start))
					}
					continue
				}
				break
			}
			if held := c.clock.Since(start); held > tt.maxEnd {
				t.Fatalf("lock held %v, limit allows at most %v", held, tt.maxEnd)
			}
			if err := l.Err(); !errors.Is(err, redlock.ErrLost) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Err = %v, want ErrLost mentioning %q", err, tt.wantMsg)
			}
		})
	}
}

func TestDoneAndErr(t *testing.T) {
	ctx := context.Background()
	t.Run("release", func(t *testing.T) {
		c := newCluster(t, 3)
		l, err := c.locker().Obtain(ctx, "x", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		done := l.Done()
		if l.Err() != nil {
			t.Fatalf("Err before release = %v", l.Err())
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		within(t, "Done after Release", func() struct{} { <-done; return struct{}{} })
		if !errors.Is(l.Err(), redlock.ErrReleased) {
			t.Fatalf("Err = %v, want ErrReleased", l.Err())
		}
	})
	t.Run("expiry without renewal", func(t *testing.T) {
		c := newCluster(t, 3)
		l, err := c.locker().Obtain(ctx, "x", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		done := l.Done()
		c.clock.Advance(time.Second - drift(time.Second) - time.Millisecond)
		select {
		case <-done:
			t.Fatal("Done closed before the validity ran out")
		case <-time.After(5 * time.Millisecond):
		}
		c.clock.Advance(time.Millisecond)
		within(t, "Done at expiry", func() struct{} { <-done; return struct{}{} })
		if !errors.Is(l.Err(), redlock.ErrLost) {
			t.Fatalf("Err = %v, want ErrLost", l.Err())
		}
	})
}

func TestContextDeadlineFollowsValidity(t *testing.T) {
	c := newCluster(t, 3)
	ctx := context.Background()
	l, err := c.locker().Obtain(ctx, "x", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lctx, cancel := l.Context(ctx)
	defer cancel()
	if dl, ok := lctx.Deadline(); !ok || !dl.Equal(l.ValidUntil()) {
		t.Fatalf("Deadline = %v, %v; want %v", dl, ok, l.ValidUntil())
	}
	c.clock.Advance(time.Second)
	if err := l.Extend(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if dl, _ := lctx.Deadline(); !dl.Equal(l.ValidUntil()) || !dl.After(epoch.Add(2*time.Second)) {
		t.Fatalf("Deadline after Extend = %v, want the new validity %v", dl.Sub(epoch), l.ValidUntil().Sub(epoch))
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	within(t, "context done after release", func() struct{} { <-lctx.Done(); return struct{}{} })
	if !errors.Is(context.Cause(lctx), redlock.ErrReleased) {
		t.Fatalf("Cause = %v, want ErrReleased", context.Cause(lctx))
	}
}

func TestRenewerBatchesRoundTrips(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker()
	ctx := context.Background()
	const n, ttl = 1000, 3 * time.Second
	locks := make([]*redlock.Lock, n)
	for i := range locks {
		l, err := lk.Obtain(ctx, "job-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), ttl)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.KeepAlive(); err != nil {
			t.Fatal(err)
		}
		locks[i] = l
	}
	// Each Obtain was decided by a quorum: its call to a third node may
	// still be on its way, and would time out when the clock moves. Count
	// from when every call has returned and no more arrive (a call whose
	// round ended before it was sent, or to a node spared as backed up, is
	// never sent).
	settled := func() []int {
		out := make([]int, len(c.nodes))
		for i, node := range c.nodes {
			received, _ := node.Calls()
			if node.Finished() < received {
				return nil
			}
			out[i] = received
		}
		return out
	}
	eventually(t, "every acquire call returned", func() bool {
		first := settled()
		if first == nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
		return slices.Equal(first, settled())
	})
	before, _ := c.nodes[0].Calls()
	c.clock.Advance(ttl / 3)
	eventually(t, "all locks renewed", func() bool {
		for _, l := range locks {
			if l.TTL() < ttl-drift(ttl)-time.Millisecond {
				return false
			}
		}
		return true
	})
	after, _ := c.nodes[0].Calls()
	// 1000 locks in batches of at most 256 keys: 4 script calls per node.
	if calls := after - before; calls > 8 {
		t.Fatalf("renewing %d locks took %d calls on one node, want a few batches", n, calls)
	}
	for _, l := range locks {
		if err := l.Err(); err != nil {
			t.Fatalf("lock lost: %v", err)
		}
	}
}

func TestRenewerStopsCleanly(t *testing.T) {
	base := runtime.NumGoroutine()
	c := newCluster(t, 3)
	lk, err := redlock.New(c.pools(), redlock.WithClock(c.clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		l, err := lk.Obtain(ctx, "k"+time.Duration(i).String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.KeepAlive(); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			_ = l.Release(ctx)
		}
	}
	// A waiter in line makes the notifier open its subscriptions too.
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := lk.Obtain(wctx, "k1ns", time.Second); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, redlock.ErrHeld) {
		t.Fatalf("Obtain of a held lock = %v, want a deadline after ErrHeld", err)
	}
	closeWithin(t, lk, c.clock)
	eventually(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= base })
}

func TestWaiterWokenByReleaseNotice(t *testing.T) {
	c := newCluster(t, 3)
	holder, waiter := c.locker(), c.locker()
	ctx := context.Background()
	const ttl = 30 * time.Second
	l, err := holder.Obtain(ctx, "x", ttl)
	if err != nil {
		t.Fatal(err)
	}
	got := start(func() (*redlock.Lock, error) { return waiter.Obtain(ctx, "x", ttl) })
	// The waiter fails on every node, subscribes, fails again at the gate
	// and sleeps on the fake clock, which stands still from here on: only a
	// notice can wake it.
	eventually(t, "waiter asleep", func() bool {
		total := 0
		for _, n := range c.nodes {
			_, applied := n.Calls()
			total += applied
		}
		return total >= 3+3+1 && c.clock.Pending() > 0
	})
	time.Sleep(5 * time.Millisecond)
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	r := within(t, "waiter woken by the release", func() result { return <-got })
	if r.err != nil {
		t.Fatalf("waiter: %v", r.err)
	}
	if waited := c.clock.Since(epoch); waited != 0 {
		t.Fatalf("fake clock moved by %v; the waiter must have been woken by the notice", waited)
	}
}

// TestLongJobKeepsLockOnRedis runs a job three times longer than the TTL on
// real nodes while a rival keeps trying.
func TestLongJobKeepsLockOnRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("real Redis")
	}
	srv := redistest.Start(t, 3)
	owner, err := redlock.New(redistest.Pools(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	rival, err := redlock.New(redistest.Pools(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	defer rival.Close()
	const ttl = 300 * time.Millisecond
	var stolen atomic.Int32
	err = owner.Do(context.Background(), "long-job", ttl, func(ctx context.Context) error {
		end := time.Now().Add(3 * ttl)
		for time.Now().Before(end) {
			if l, err := rival.TryObtain(ctx, "long-job", ttl); err == nil {
				stolen.Add(1)
				_ = l.Release(ctx)
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if n := stolen.Load(); n != 0 {
		t.Fatalf("a rival obtained the lock %d times during the job", n)
	}
}
