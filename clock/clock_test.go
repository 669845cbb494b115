package clock_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/clock"
)

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// hangBound guards waits for what must happen without the fake clock
// moving; it is not a speed requirement.
const hangBound = 10 * time.Second

var (
	_ clock.Clock = clock.Real{}
	_ clock.Clock = (*clock.Fake)(nil)
)

func fired(t clock.Timer) bool {
	select {
	case <-t.C():
		return true
	default:
		return false
	}
}

func TestFakeNowAndSince(t *testing.T) {
	f := clock.NewFake(epoch)
	if !f.Now().Equal(epoch) {
		t.Fatalf("Now() = %v, want %v", f.Now(), epoch)
	}
	f.Advance(1500 * time.Millisecond)
	if got := f.Since(epoch); got != 1500*time.Millisecond {
		t.Errorf("Since(start) = %v, want 1.5s", got)
	}
	f.Set(epoch.Add(time.Hour))
	if got := f.Now().Sub(epoch); got != time.Hour {
		t.Errorf("after Set: %v, want 1h", got)
	}
	// Time never goes backwards.
	f.Set(epoch)
	f.Advance(-time.Minute)
	if got := f.Now().Sub(epoch); got != time.Hour {
		t.Errorf("after setting an earlier time: %v, want 1h", got)
	}
}

// A timer fires during the Advance or Set that reaches its deadline, not
// before, and delivers the clock's new time.
func TestFakeTimerFiresAtDeadline(t *testing.T) {
	f := clock.NewFake(epoch)
	tm := f.NewTimer(10 * time.Millisecond)
	if f.Pending() != 1 {
		t.Fatalf("Pending() = %d, want 1", f.Pending())
	}
	if next, ok := f.NextDeadline(); !ok || !next.Equal(epoch.Add(10*time.Millisecond)) {
		t.Fatalf("NextDeadline() = %v, %v", next, ok)
	}
	f.Advance(10*time.Millisecond - 1)
	if fired(tm) {
		t.Fatal("fired 1ns before its deadline")
	}
	f.Advance(1)
	select {
	case at := <-tm.C():
		if !at.Equal(epoch.Add(10 * time.Millisecond)) {
			t.Errorf("delivered %v, want the clock's time at the deadline", at.Sub(epoch))
		}
	default:
		t.Fatal("did not fire at its deadline")
	}
	if f.Pending() != 0 {
		t.Errorf("Pending() after firing = %d", f.Pending())
	}
	if _, ok := f.NextDeadline(); ok {
		t.Errorf("NextDeadline() reports a timer after all fired")
	}
	if tm.Stop() {
		t.Errorf("Stop() after firing = true")
	}
}

// One Advance past several deadlines fires them all; timers are independent.
func TestFakeAdvanceFiresEveryDueTimer(t *testing.T) {
	f := clock.NewFake(epoch)
	var timers []clock.Timer
	for _, d := range []time.Duration{30, 10, 20, 40} {
		timers = append(timers, f.NewTimer(d*time.Millisecond))
	}
	if next, _ := f.NextDeadline(); !next.Equal(epoch.Add(10 * time.Millisecond)) {
		t.Errorf("NextDeadline() = %v, want the earliest (10ms)", next.Sub(epoch))
	}
	f.Advance(35 * time.Millisecond)
	for i, want := range []bool{true, true, true, false} {
		if got := fired(timers[i]); got != want {
			t.Errorf("timer %d fired = %v, want %v", i, got, want)
		}
	}
	if f.Pending() != 1 {
		t.Errorf("Pending() = %d, want 1", f.Pending())
	}
}

func TestFakeStop(t *testing.T) {
	f := clock.NewFake(epoch)
	tm := f.NewTimer(time.Second)
	var ran atomic.Bool
	af := f.AfterFunc(time.Second, func() { ran.Store(true) })
	if !tm.Stop() || !af.Stop() {
		t.Fatal("Stop() of pending timers = false")
	}
	if tm.Stop() {
		t.Error("second Stop() = true")
	}
	if f.Pending() != 0 {
		t.Errorf("Pending() after Stop = %d", f.Pending())
	}
	f.Advance(time.Hour)
	if fired(tm) || ran.Load() {
		t.Error("a stopped timer fired")
	}
}

// A non-positive duration fires at once.
func TestFakeImmediateTimers(t *testing.T) {
	f := clock.NewFake(epoch)
	for _, d := range []time.Duration{0, -time.Second} {
		if tm := f.NewTimer(d); !fired(tm) {
			t.Errorf("NewTimer(%v) did not fire at once", d)
		}
		done := make(chan struct{})
		f.AfterFunc(d, func() { close(done) })
		select {
		case <-done:
		case <-time.After(hangBound):
			t.Fatalf("AfterFunc(%v) never ran", d)
		}
	}
	if f.Pending() != 0 {
		t.Errorf("Pending() = %d", f.Pending())
	}
}

// AfterFunc runs its function in its own goroutine once the clock passes the
// deadline, so the function may itself use the clock.
func TestFakeAfterFunc(t *testing.T) {
	f := clock.NewFake(epoch)
	done := make(chan time.Time, 1)
	tm := f.AfterFunc(time.Second, func() { done <- f.Now() })
	if tm.C() != nil {
		t.Error("an AfterFunc timer has a channel")
	}
	f.Advance(999 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("ran before its deadline")
	default:
	}
	f.Advance(time.Millisecond)
	select {
	case at := <-done:
		if at.Before(epoch.Add(time.Second)) {
			t.Errorf("ran at %v", at.Sub(epoch))
		}
	case <-time.After(hangBound):
		t.Fatal("never ran")
	}
}

// WaitPending returns once enough timers wait, and with ctx's error when ctx
// ends first.
func TestFakeWaitPending(t *testing.T) {
	f := clock.NewFake(epoch)
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	go func() {
		for range 3 {
			f.NewTimer(time.Second)
		}
	}()
	if err := f.WaitPending(ctx, 3); err != nil {
		t.Fatalf("WaitPending(3): %v", err)
	}
	if f.Pending() < 3 {
		t.Errorf("WaitPending returned with %d timers pending", f.Pending())
	}
	ended, stop := context.WithCancel(context.Background())
	stop()
	if err := f.WaitPending(ended, 4); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitPending with an ended context = %v", err)
	}
}

func TestSleep(t *testing.T) {
	t.Run("wakes when the clock passes d", func(t *testing.T) {
		f := clock.NewFake(epoch)
		done := make(chan error, 1)
		go func() { done <- clock.Sleep(context.Background(), f, time.Minute) }()
		ctx, cancel := context.WithTimeout(context.Background(), hangBound)
		defer cancel()
		if err := f.WaitPending(ctx, 1); err != nil {
			t.Fatal(err)
		}
		f.Advance(time.Minute - 1)
		select {
		case <-done:
			t.Fatal("woke early")
		default:
		}
		f.Advance(1)
		if err := <-done; err != nil {
			t.Errorf("Sleep = %v", err)
		}
	})
	t.Run("ends with ctx and stops its timer", func(t *testing.T) {
		f := clock.NewFake(epoch)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- clock.Sleep(ctx, f, time.Hour) }()
		wctx, wcancel := context.WithTimeout(context.Background(), hangBound)
		defer wcancel()
		if err := f.WaitPending(wctx, 1); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Sleep = %v, want context.Canceled", err)
		}
		if f.Pending() != 0 {
			t.Errorf("the timer of a cancelled Sleep is left pending")
		}
	})
	t.Run("ended ctx, no wait", func(t *testing.T) {
		f := clock.NewFake(epoch)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := clock.Sleep(ctx, f, 0); !errors.Is(err, context.Canceled) {
			t.Errorf("Sleep(ended ctx, 0) = %v", err)
		}
		if err := clock.Sleep(context.Background(), f, -time.Second); err != nil {
			t.Errorf("Sleep(-1s) = %v", err)
		}
		if f.Pending() != 0 {
			t.Errorf("Pending() = %d", f.Pending())
		}
	})
}

// The fake clock is safe for concurrent use (run with -race).
func TestFakeConcurrentUse(t *testing.T) {
	f := clock.NewFake(epoch)
	var wg sync.WaitGroup
	var ran atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				tm := f.NewTimer(time.Duration(j) * time.Microsecond)
				if j%3 == 0 {
					tm.Stop()
				}
				f.AfterFunc(time.Duration(j)*time.Microsecond, func() { ran.Add(1) })
				f.Advance(time.Microsecond)
				_, _ = f.NextDeadline()
				_ = f.Pending()
			}
		}()
	}
	wg.Wait()
	f.Advance(time.Hour)
	if f.Pending() != 0 {
		t.Errorf("Pending() = %d after advancing past every deadline", f.Pending())
	}
	deadline := time.Now().Add(hangBound)
	for ran.Load() != 800 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if ran.Load() != 800 {
		t.Errorf("%d of 800 AfterFunc callbacks ran", ran.Load())
	}
}

// The real clock: monotonic readings and timers that fire.
func TestReal(t *testing.T) {
	var c clock.Real
	a := c.Now()
	if c.Since(a) < 0 {
		t.Error("Since went negative")
	}
	tm := c.NewTimer(time.Millisecond)
	select {
	case <-tm.C():
	case <-time.After(hangBound):
		t.Fatal("timer never fired")
	}
	done := make(chan struct{})
	c.AfterFunc(time.Millisecond, func() { close(done) })
	select {
	case <-done:
	case <-time.After(hangBound):
		t.Fatal("AfterFunc never ran")
	}
	if stopped := c.NewTimer(time.Hour).Stop(); !stopped {
		t.Error("Stop() of a pending real timer = false")
	}
	if err := clock.Sleep(context.Background(), c, time.Microsecond); err != nil {
		t.Errorf("Sleep = %v", err)
	}
}
