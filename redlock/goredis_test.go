package redlock_test

// The core lock's tests on real redis-server processes through the go-redis
// adapter (pool/goredis): mutual exclusion of contending Lockers, nodes
// killed or hung, and waiters woken by release notices over the adapter's
// Pub/Sub.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/history"
	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/pool/goredis"
	"github.com/quorumlock/quorumlock/redlock"
)

// goRedisBound guards the real-time waits of these tests against a hang; it
// is not a speed requirement.
const goRedisBound = 10 * time.Second

// goRedisLocker returns a Locker on the real clock over fresh go-redis pools
// to servers; both are closed when the test ends.
func goRedisLocker(t *testing.T, servers []*redistest.Server, opts ...redlock.Option) *redlock.Locker {
	t.Helper()
	pools := make([]pool.Pool, len(servers))
	for i, s := range servers {
		p, err := goredis.Dial(s.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		pools[i] = p
	}
	lk, err := redlock.New(pools, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lk.Close() })
	return lk
}

func goRedisCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Two Lockers with their own go-redis pools, six goroutines in all, contend
// for one name: at no time do two of them hold it.
func TestGoRedisMutualExclusion(t *testing.T) {
	servers := redistest.Start(t, 3)
	lockers := []*redlock.Locker{goRedisLocker(t, servers), goRedisLocker(t, servers)}
	const goroutines, rounds = 3, 20
	rec := history.NewRecorder(clock.Real{})
	var holders, maxHolders, done atomic.Int32
	ctx := goRedisCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, len(lockers)*goroutines)
	for li, lk := range lockers {
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				who := fmt.Sprintf("locker%d/g%d", li, g)
				for range rounds {
					l, err := lk.Obtain(ctx, "counter", time.Second)
					if err != nil {
						errs <- fmt.Errorf("%s: Obtain: %w", who, err)
						return
					}
					acquired := rec.Now()
					n := holders.Add(1)
					for m := maxHolders.Load(); n > m && !maxHolders.CompareAndSwap(m, n); m = maxHolders.Load() {
					}
					time.Sleep(50 * time.Microsecond) // the critical section
					holders.Add(-1)
					rec.Add(history.Section{Holder: who, Name: "counter", Acquired: acquired, ValidUntil: l.ValidUntil(), Released: rec.Now()})
					if err := l.Release(ctx); err != nil {
						errs <- fmt.Errorf("%s: Release: %w", who, err)
						return
					}
					done.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if m := maxHolders.Load(); m != 1 {
		t.Errorf("%d holders at once", m)
	}
	if got, want := done.Load(), int32(len(lockers)*goroutines*rounds); got != want {
		t.Errorf("%d critical sections, want %d", got, want)
	}
	if res := history.Check(rec.Sections()); !res.OK() {
		t.Errorf("history: %v", res)
	}
}

// With a minority of nodes killed or hung, locks still work, and a hung node
// holds no round past the node timeout.
func TestGoRedisMinorityDown(t *testing.T) {
	for _, fault := range []struct {
		name string
		do   func(*redistest.Server) error
	}{
		{"killed", (*redistest.Server).Kill},
		{"hung", (*redistest.Server).Pause},
	} {
		t.Run(fault.name, func(t *testing.T) {
			servers := redistest.Start(t, 5)
			// Live nodes answer in well under the node timeout even on a
			// busy machine; the hung ones never do.
			lk := goRedisLocker(t, servers, redlock.WithNodeTimeout(time.Second))
			ctx := goRedisCtx(t)
			// The first round opens every connection, so that the fault
			// hits connections in use, not only new dials.
			l, err := lk.TryObtain(ctx, "k", time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			for _, s := range servers[:2] {
				if err := fault.do(s); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Resume() })
			}
			// Obtain, not TryObtain: a node may not have applied the
			// first round's release yet (a release returns once a quorum
			// has).
			for i := range 3 {
				l, err := lk.Obtain(ctx, "k", time.Second)
				if err != nil {
					t.Fatalf("round %d with 2 of 5 nodes %s: %v", i, fault.name, err)
				}
				if err := l.Extend(ctx, time.Second); err != nil {
					t.Fatalf("round %d: Extend with 2 of 5 nodes %s: %v", i, fault.name, err)
				}
				if err := l.Release(ctx); err != nil {
					t.Fatalf("round %d: Release with 2 of 5 nodes %s: %v", i, fault.name, err)
				}
			}
		})
	}
}

// With a majority of nodes killed every attempt fails with ErrNoQuorum,
// naming the dead nodes; a lock obtained before cannot be released on a
// quorum.
func TestGoRedisMajorityKilled(t *testing.T) {
	servers := redistest.Start(t, 5)
	lk := goRedisLocker(t, servers, redlock.WithNodeTimeout(500*time.Millisecond))
	ctx := goRedisCtx(t)
	held, err := lk.TryObtain(ctx, "held", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers[:3] {
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	_, err = lk.TryObtain(ctx, "k", time.Second)
	if !errors.Is(err, redlock.ErrNoQuorum) || errors.Is(err, redlock.ErrHeld) {
		t.Fatalf("TryObtain with 3 of 5 nodes killed = %v, want ErrNoQuorum", err)
	}
	var qe *redlock.QuorumError
	if !errors.As(err, &qe) {
		t.Fatalf("%v is not a *QuorumError", err)
	}
	failed := 0
	for _, v := range qe.Votes {
		if v.Err != nil {
			failed++
		}
	}
	if failed < 3 {
		t.Errorf("%d votes carry an error, want the 3 killed nodes': %v", failed, err)
	}
	for _, s := range servers[:3] {
		if !strings.Contains(err.Error(), s.Addr) {
			t.Errorf("the error does not name killed node %s: %v", s.Addr, err)
		}
	}
	shortCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = lk.Obtain(shortCtx, "k", time.Second)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, redlock.ErrNoQuorum) {
		t.Errorf("Obtain with 3 of 5 nodes killed = %v, want DeadlineExceeded and ErrNoQuorum", err)
	}
	if err := held.Release(ctx); err == nil {
		t.Error("Release on 2 of 5 nodes succeeded")
	}
}

// A waiter is woken by the release notice it receives over the go-redis
// adapter's Pub/Sub: it obtains the lock long before either its backoff or
// the holder's TTL would have let it try again.
func TestGoRedisReleaseWakesWaiter(t *testing.T) {
	servers := redistest.Start(t, 3)
	holder := goRedisLocker(t, servers)
	failed := make(chan struct{}, 64)
	waiter := goRedisLocker(t, servers,
		redlock.WithBackoff(redlock.ConstantBackoff(time.Minute)),
		redlock.WithObserver(func(e redlock.Event) {
			if e.Kind == redlock.EventObtainFailed {
				select {
				case failed <- struct{}{}:
				default:
				}
			}
		}))
	ctx := goRedisCtx(t)
	l, err := holder.TryObtain(ctx, "job", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, goRedisBound)
		defer cancel()
		wl, err := waiter.Obtain(wctx, "job", time.Minute)
		if err == nil {
			err = wl.Release(ctx)
		}
		got <- err
	}()
	select {
	case <-failed: // the waiter found the lock held and now waits
	case <-time.After(goRedisBound):
		t.Fatal("the waiter never tried")
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v (woken by no release notice?)", err)
	}
}
