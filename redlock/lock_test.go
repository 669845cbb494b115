package redlock_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// probed returns a cluster of n nodes, each wrapped in a probe, and a Locker
// over the probes.
func probed(t *testing.T, n int, opts ...redlock.Option) (*cluster, []*probe, *redlock.Locker) {
	t.Helper()
	c := newCluster(t, n)
	probes := make([]*probe, n)
	pools := make([]pool.Pool, n)
	for i, node := range c.nodes {
		probes[i] = newProbe(node)
		pools[i] = probes[i]
	}
	return c, probes, newLocker(t, c.clock, pools, opts...)
}

func calls(probes []*probe, s *pool.Script) int {
	n := 0
	for _, p := range probes {
		n += p.count(s.Name)
	}
	return n
}

// noKey reports whether no node holds the lock's key.
func noKey(c *cluster, name string) func() bool {
	return func() bool {
		for _, n := range c.nodes {
			if _, _, ok := n.Get(lockKey(name)); ok {
				return false
			}
		}
		return true
	}
}

func TestReleaseTwice(t *testing.T) {
	c := newCluster(t, 3)
	l := obtainEverywhere(t, c, c.locker(), "twice", time.Second)
	if err := l.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	eventually(t, "the key is gone from every node", noKey(c, "twice"))
	if got := l.TTL(); got != 0 {
		t.Errorf("TTL() after Release = %v, want 0", got)
	}
	err := l.Release(t.Context())
	if !errors.Is(err, redlock.ErrNotHeld) {
		t.Fatalf("second Release = %v, want ErrNotHeld", err)
	}
}

func TestExtendAfterRelease(t *testing.T) {
	c, probes, lk := probed(t, 3)
	l, err := lk.TryObtain(t.Context(), "er", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := l.Extend(t.Context(), time.Second); !errors.Is(err, redlock.ErrNotHeld) {
		t.Fatalf("Extend after Release = %v, want ErrNotHeld", err)
	}
	if n := calls(probes, scripts.Extend); n != 0 {
		t.Errorf("Extend after Release contacted %d nodes", n)
	}
	eventually(t, "the released key is gone", noKey(c, "er"))
}

// A lock whose validity has elapsed is never revived, even if its keys are
// still on the nodes (they outlive the validity by the drift allowance).
func TestExtendAfterValidity(t *testing.T) {
	const ttl = time.Second
	validity := ttl - drift(ttl) // 988ms
	for _, tc := range []struct {
		after time.Duration
		ok    bool
	}{
		{validity - time.Millisecond, true},
		{validity - 1, true},
		{validity, false},
		{validity + time.Millisecond, false},
		{time.Minute, false},
	} {
		t.Run(tc.after.String(), func(t *testing.T) {
			c, probes, lk := probed(t, 3)
			l := obtainEverywhere(t, c, lk, "ev", ttl)
			c.clock.Advance(tc.after)
			before := l.ValidUntil()
			err := l.Extend(t.Context(), ttl)
			if tc.ok {
				if err != nil {
					t.Fatalf("Extend %v after obtaining: %v", tc.after, err)
				}
				if got, want := l.ValidUntil(), epoch.Add(tc.after+ttl-drift(ttl)); !got.Equal(want) {
					t.Errorf("ValidUntil = epoch+%v, want epoch+%v", got.Sub(epoch), want.Sub(epoch))
				}
				return
			}
			if !errors.Is(err, redlock.ErrNotHeld) {
				t.Fatalf("Extend %v after obtaining = %v, want ErrNotHeld", tc.after, err)
			}
			if n := calls(probes, scripts.Extend); n != 0 {
				t.Errorf("an elapsed lock was extended on %d nodes", n)
			}
			if !l.ValidUntil().Equal(before) || l.TTL() > 0 {
				t.Errorf("ValidUntil moved to epoch+%v, TTL %v", l.ValidUntil().Sub(epoch), l.TTL())
			}
		})
	}
}

// Extend restarts the validity from the start of the extension, with the
// new TTL (longer or shorter), and gives every node the new TTL.
func TestExtendMovesValidUntil(t *testing.T) {
	c := newCluster(t, 3)
	l := obtainEverywhere(t, c, c.locker(), "ext", time.Second)
	for i, ttl := range []time.Duration{2 * time.Second, 500 * time.Millisecond, 10 * time.Second} {
		c.clock.Advance(400 * time.Millisecond)
		now := c.clock.Now()
		if err := l.Extend(t.Context(), ttl); err != nil {
			t.Fatalf("Extend %d (%v): %v", i, ttl, err)
		}
		if got, want := l.ValidUntil(), now.Add(ttl-drift(ttl)); !got.Equal(want) {
			t.Errorf("Extend(%v): ValidUntil = epoch+%v, want epoch+%v", ttl, got.Sub(epoch), want.Sub(epoch))
		}
		if got, want := l.TTL(), ttl-drift(ttl); got != want {
			t.Errorf("Extend(%v): TTL() = %v, want %v", ttl, got, want)
		}
		eventually(t, "every node has the new TTL", func() bool {
			for _, n := range c.nodes {
				if val, pttl, ok := n.Get(lockKey("ext")); !ok || val != l.Token() || pttl != ttl {
					return false
				}
			}
			return true
		})
	}
}

// The new validity counts from the start of the extension: a slow round eats
// into it, and a round that takes the whole TTL minus drift fails with
// ErrExpired and leaves the old validity in place.
func TestExtendValidityBoundary(t *testing.T) {
	const ttl = time.Second
	budget := ttl - drift(ttl)
	for _, tc := range []struct {
		elapsed time.Duration
		ok      bool
	}{
		{300 * time.Millisecond, true},
		{budget - 1, true},
		{budget, false},
	} {
		t.Run(tc.elapsed.String(), func(t *testing.T) {
			c := newCluster(t, 1)
			p := newProbe(c.nodes[0])
			lk := newLocker(t, c.clock, []pool.Pool{p}, redlock.WithNodeTimeout(time.Hour))
			l, err := lk.TryObtain(t.Context(), "eb", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.clock.Advance(time.Second)
			start := c.clock.Now()
			before := l.ValidUntil()
			p.after = func(s *pool.Script) {
				if s == scripts.Extend {
					c.clock.Set(start.Add(tc.elapsed))
				}
			}
			err = within(t, "Extend", func() error { return l.Extend(t.Context(), ttl) })
			if tc.ok {
				if err != nil {
					t.Fatalf("Extend: %v", err)
				}
				if got, want := l.ValidUntil(), start.Add(budget); !got.Equal(want) {
					t.Errorf("ValidUntil = start+%v, want start+%v", got.Sub(start), budget)
				}
				if got, want := l.TTL(), budget-tc.elapsed; got != want {
					t.Errorf("TTL() = %v, want %v", got, want)
				}
				return
			}
			if !errors.Is(err, redlock.ErrExpired) {
				t.Fatalf("Extend whose round took %v = %v, want ErrExpired", tc.elapsed, err)
			}
			if qe := quorumError(t, err); qe.Op != "extend" {
				t.Errorf("Op = %q, want extend", qe.Op)
			}
			if !l.ValidUntil().Equal(before) {
				t.Errorf("a failed Extend moved ValidUntil from epoch+%v to epoch+%v", before.Sub(epoch), l.ValidUntil().Sub(epoch))
			}
		})
	}
}

// Extend fails with ErrNotHeld when the key is gone or taken on a majority
// (for example after restarts without persistence), and with ErrNoQuorum when
// a majority cannot be reached; the validity is unchanged either way.
func TestExtendFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(c *cluster)
		want    error
	}{
		{"flushed majority", func(c *cluster) { c.nodes[0].Flush(); c.nodes[1].Flush() }, redlock.ErrNotHeld},
		{"taken over on a majority", func(c *cluster) {
			for _, n := range c.nodes[:2] {
				n.Set(lockKey("ef"), "someone-else", time.Minute)
			}
		}, redlock.ErrNotHeld},
		{"majority down", func(c *cluster) { c.nodes[1].Fail(errDown); c.nodes[2].Fail(errDown) }, redlock.ErrNoQuorum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3)
			l := obtainEverywhere(t, c, c.locker(), "ef", time.Second)
			c.clock.Advance(100 * time.Millisecond)
			before := l.ValidUntil()
			tc.breakIt(c)
			err := within(t, "Extend", func() error { return l.Extend(t.Context(), time.Second) })
			if !errors.Is(err, tc.want) {
				t.Fatalf("Extend = %v, want %v", err, tc.want)
			}
			if qe := quorumError(t, err); qe.Op != "extend" || qe.Name != "ef" {
				t.Errorf("QuorumError = %+v", qe)
			}
			if !l.ValidUntil().Equal(before) {
				t.Errorf("ValidUntil moved after a failed Extend")
			}
			for _, n := range c.nodes {
				if val, _, ok := n.Get(lockKey("ef")); ok && val == "someone-else" {
					if _, pttl, _ := n.Get(lockKey("ef")); pttl != time.Minute {
						t.Errorf("%s: the other owner's key was touched (TTL %v)", n.Addr(), pttl)
					}
				}
			}
		})
	}
}

func TestExtendRejectsBadTTL(t *testing.T) {
	_, probes, lk := probed(t, 3)
	l, err := lk.TryObtain(t.Context(), "bt", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	before := l.ValidUntil()
	for _, ttl := range []time.Duration{0, -time.Second, redlock.MinTTL - 1} {
		if err := l.Extend(t.Context(), ttl); !errors.Is(err, redlock.ErrInvalid) {
			t.Errorf("Extend(%v) = %v, want ErrInvalid", ttl, err)
		}
	}
	if n := calls(probes, scripts.Extend); n != 0 {
		t.Errorf("bad TTLs reached %d nodes", n)
	}
	if !l.ValidUntil().Equal(before) {
		t.Errorf("ValidUntil moved")
	}
}

// Release after the validity elapsed reports ErrNotHeld (the critical section
// may not have been exclusive to its end), yet still deletes what is left of
// the owner's keys.
func TestReleaseAfterValidity(t *testing.T) {
	const ttl = time.Second
	c := newCluster(t, 3)
	l := obtainEverywhere(t, c, c.locker(), "rv", ttl)
	c.clock.Advance(ttl - drift(ttl)) // keys live 12ms longer on the nodes
	err := l.Release(t.Context())
	if !errors.Is(err, redlock.ErrNotHeld) {
		t.Fatalf("Release after the validity = %v, want ErrNotHeld", err)
	}
	eventually(t, "the remaining keys are deleted", noKey(c, "rv"))
}

// Release by an owner whose lock expired and was taken by another deletes
// nothing of the new owner's.
func TestReleaseByFormerOwner(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker()
	old := obtainEverywhere(t, c, lk, "fo", 100*time.Millisecond)
	c.clock.Advance(100 * time.Millisecond)
	cur := obtainEverywhere(t, c, c.locker(), "fo", time.Second)
	if err := old.Release(t.Context()); !errors.Is(err, redlock.ErrNotHeld) {
		t.Fatalf("former owner's Release = %v, want ErrNotHeld", err)
	}
	if err := old.Extend(t.Context(), time.Second); !errors.Is(err, redlock.ErrNotHeld) {
		t.Fatalf("former owner's Extend = %v, want ErrNotHeld", err)
	}
	// Let the former owner's calls land, then check nothing changed.
	if err := lk.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		if val, pttl, ok := n.Get(lockKey("fo")); !ok || val != cur.Token() || pttl != time.Second {
			t.Errorf("%s: current owner's key = %q (TTL %v), %v", n.Addr(), val, pttl, ok)
		}
	}
	if cur.TTL() <= 0 {
		t.Errorf("the current owner lost its lock")
	}
}

// A released lock's straggler is cleaned up when it finally answers.
func TestReleaseCleansUpStraggler(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker()
	c.nodes[2].Hang()
	l := within(t, "TryObtain", func() result {
		l, err := lk.TryObtain(t.Context(), "st", time.Minute)
		return result{l, err}
	})
	if l.err != nil {
		t.Fatal(l.err)
	}
	if err := within(t, "Release with a hung node", func() error { return l.lock.Release(t.Context()) }); err != nil {
		t.Fatalf("Release: %v", err)
	}
	c.nodes[2].Unhang()
	eventually(t, "the straggler granted, then was cleaned up", func() bool {
		recv, applied := c.nodes[2].Calls()
		return recv >= 2 && applied >= 2 && noKey(c, "st")()
	})
}

// Release reports ErrNoQuorum when a majority cannot be reached, and the
// context's error when ctx ends first; in both cases the deletions that can
// be made are made.
func TestReleaseFailures(t *testing.T) {
	t.Run("majority down", func(t *testing.T) {
		c := newCluster(t, 3)
		l := obtainEverywhere(t, c, c.locker(), "rf", time.Second)
		c.nodes[0].Fail(errDown)
		c.nodes[1].Fail(errDown)
		err := l.Release(t.Context())
		if !errors.Is(err, redlock.ErrNoQuorum) {
			t.Fatalf("Release = %v, want ErrNoQuorum", err)
		}
		if qe := quorumError(t, err); qe.Op != "release" {
			t.Errorf("Op = %q", qe.Op)
		}
		eventually(t, "the reachable node is released", func() bool {
			_, _, ok := c.nodes[2].Get(lockKey("rf"))
			return !ok
		})
	})
	t.Run("context already cancelled", func(t *testing.T) {
		c := newCluster(t, 3)
		l := obtainEverywhere(t, c, c.locker(), "rc", time.Second)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := l.Release(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Release = %v, want nil or context.Canceled", err)
		}
		eventually(t, "the keys are deleted despite the cancelled context", noKey(c, "rc"))
	})
}

// Release and Extend right after Obtain must see every node that granted:
// a node whose grant was counted must not be treated as unanswered.
func TestReleaseAndExtendRightAfterObtain(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker()
	for i := range 300 {
		// Stragglers of earlier rounds may still hold the key on some
		// nodes (each step needs a quorum only): try until they are gone.
		var l *redlock.Lock
		var err error
		eventually(t, "the lock is free", func() bool {
			l, err = lk.TryObtain(t.Context(), "quick", time.Second)
			return !errors.Is(err, redlock.ErrHeld)
		})
		if err != nil {
			t.Fatalf("round %d: TryObtain: %v", i, err)
		}
		if err := l.Extend(t.Context(), time.Second); err != nil {
			t.Fatalf("round %d: Extend right after Obtain: %v", i, err)
		}
		if err := l.Release(t.Context()); err != nil {
			t.Fatalf("round %d: Release right after Extend: %v", i, err)
		}
	}
}

// A Lock's methods are safe for concurrent use (run with -race).
func TestLockConcurrentUse(t *testing.T) {
	c := newCluster(t, 3)
	l := obtainEverywhere(t, c, c.locker(), "cc", time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				_ = l.TTL()
				_ = l.ValidUntil()
				_ = l.Name()
				_ = l.Token()
				if j%5 == i%5 {
					if err := l.Extend(t.Context(), time.Minute); err != nil && !errors.Is(err, redlock.ErrNotHeld) {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := l.Release(t.Context()); err != nil {
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent use: %v", err)
	}
	eventually(t, "released", noKey(c, "cc"))
}

// Close waits for the stragglers of decided rounds; afterwards every method
// of the Locker and of its Locks returns ErrClosed.
func TestClose(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker()
	held := obtainEverywhere(t, c, lk, "kept", time.Minute)
	c.nodes[2].Hang()
	l, err := lk.TryObtain(t.Context(), "cl", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- lk.Close() }()
	eventually(t, "the Locker refuses new work", func() bool {
		_, err := lk.TryObtain(t.Context(), "after", time.Second)
		return errors.Is(err, redlock.ErrClosed)
	})
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a straggler was still hung", err)
	default:
	}
	c.nodes[2].Unhang()
	if err := recv(t, "Close", closed); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The straggler answered and was cleaned up before Close returned.
	if recv, applied := c.nodes[2].Calls(); recv < 2 || applied < 2 {
		t.Errorf("Close returned before the straggler finished: %d calls received, %d applied", recv, applied)
	}
	if _, _, ok := c.nodes[2].Get(lockKey("cl")); ok {
		t.Errorf("the straggler's key is left on %s", c.nodes[2].Addr())
	}
	for op, err := range map[string]error{
		"Obtain":    func() error { _, err := lk.Obtain(t.Context(), "x", time.Second); return err }(),
		"TryObtain": func() error { _, err := lk.TryObtain(t.Context(), "x", time.Second); return err }(),
		"Extend":    held.Extend(t.Context(), time.Minute),
		"Release":   held.Release(t.Context()),
	} {
		if !errors.Is(err, redlock.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", op, err)
		}
	}
	if err := lk.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// An attempt that fails while Close is waiting must still clean up what it
// was granted: Close promises to wait for "releases of failed attempts", and
// Obtain promises that every failed attempt is released.
func TestCloseDuringFailedAttempt(t *testing.T) {
	c := newCluster(t, 3)
	gate := make(chan struct{})
	var armed atomic.Bool
	pools := []pool.Pool{c.nodes[0]}
	for _, n := range c.nodes[1:] {
		p := newProbe(n)
		p.before = func(ctx context.Context, s *pool.Script) error {
			if s != scripts.Acquire || !armed.Load() {
				return nil
			}
			select {
			case <-gate:
			case <-ctx.Done():
			}
			return errDown
		}
		pools = append(pools, p)
	}
	lk := newLocker(t, c.clock, pools)
	// A lock to probe the Locker with: Extend fails with ErrClosed once
	// Close has begun.
	held := obtainEverywhere(t, c, lk, "held", time.Minute)
	armed.Store(true)
	ch := start(func() (*redlock.Lock, error) { return lk.TryObtain(t.Context(), "cd", time.Minute) })
	eventually(t, "the first node grants", func() bool {
		_, _, ok := c.nodes[0].Get(lockKey("cd"))
		return ok
	})
	closed := make(chan error, 1)
	go func() { closed <- lk.Close() }()
	eventually(t, "Close has begun", func() bool {
		return errors.Is(held.Extend(t.Context(), time.Minute), redlock.ErrClosed)
	})
	close(gate)
	if r := recv(t, "TryObtain", ch); !errors.Is(r.err, redlock.ErrNoQuorum) {
		t.Fatalf("TryObtain = %v, want ErrNoQuorum", r.err)
	}
	if err := recv(t, "Close", closed); err != nil {
		t.Fatal(err)
	}
	if val, ttl, ok := c.nodes[0].Get(lockKey("cd")); ok {
		t.Fatalf("after Close, the failed attempt's key %q is left on %s for %v", val, c.nodes[0].Addr(), ttl)
	}
}

// A node that had not answered the acquisition when the lock is released
// releases itself when it does, and Release counts that answer: here the
// quorum still holding the key is one answered node and that straggler.
func TestReleaseCountsTheNodesStillToAnswer(t *testing.T) {
	c := newCluster(t, 3)
	c.nodes[2].SetDelay(50 * time.Millisecond) // on the fake clock
	lk := c.locker()
	ctx := context.Background()
	l, err := lk.Obtain(ctx, "s", time.Minute) // decided by nodes 0 and 1
	if err != nil {
		t.Fatal(err)
	}
	c.nodes[1].Set(lockKey("s"), "someone-else", time.Minute)
	if err := releaseOnClock(t, c, l); err != nil {
		t.Fatalf("Release with node 2 still to answer: %v", err)
	}
	if _, _, held := c.nodes[2].Get(lockKey("s")); held {
		t.Error("node 2 still holds the key")
	}
}

// releaseOnClock releases l, moving c's clock forward while Release waits,
// and returns its error.
func releaseOnClock(t *testing.T, c *cluster, l *redlock.Lock) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- l.Release(context.Background()) }()
	var err error
	advanceUntil(t, c, "Release returned", func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	return err
}

// advanceUntil moves c's clock forward 10ms at a time until cond holds,
// failing t if it does not within a second of that clock.
func advanceUntil(t *testing.T, c *cluster, what string, cond func() bool) {
	t.Helper()
	for waited := time.Duration(0); !cond(); waited += 10 * time.Millisecond {
		if waited > time.Second {
			t.Fatalf("not within a second of the Locker's clock: %s", what)
		}
		c.clock.Advance(10 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
}

// A node that refused the acquisition holds no key of the lock: Release
// counts its vote as not released without asking it, whether it refused
// before the lock was obtained or after it was released (a straggler), and
// a quorum of the others releases the lock.
func TestReleaseAsksNoNodeThatRefused(t *testing.T) {
	for _, straggler := range []bool{false, true} {
		t.Run(fmt.Sprintf("straggler=%v", straggler), func(t *testing.T) {
			c := newCluster(t, 3)
			c.nodes[2].Set(lockKey("r"), "someone-else", time.Hour)
			if straggler {
				c.nodes[2].SetDelay(50 * time.Millisecond) // on the fake clock
			}
			lk := c.locker()
			ctx := context.Background()
			l, err := lk.Obtain(ctx, "r", time.Minute) // decided by nodes 0 and 1
			if err != nil {
				t.Fatal(err)
			}
			if !straggler {
				eventually(t, "node 2 refused", func() bool { return c.nodes[2].Finished() == 1 })
			}
			if err := releaseOnClock(t, c, l); err != nil {
				t.Fatalf("Release: %v", err)
			}
			// The straggler refuses within the node timeout.
			advanceUntil(t, c, "node 2 answered", func() bool { return c.nodes[2].Finished() > 0 })
			if v, _, _ := c.nodes[2].Get(lockKey("r")); v != "someone-else" {
				t.Errorf("node 2 holds %q", v)
			}
			closeWithin(t, lk, c.clock) // every call made is then answered
			if got, _ := c.nodes[2].Calls(); got != 1 {
				t.Errorf("node 2 received %d calls, want its acquire call alone", got)
			}
		})
	}
}
