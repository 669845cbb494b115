// Package clock gives the lock coordinator its sense of time.
//
// Every duration the coordinator computes (elapsed time of an attempt, the
// remaining validity of a lock, per-node timeouts, retry waits) is read from a
// Clock, never from the time package directly, so that tests and simulations
// can drive time by hand with a Fake.
package clock

import (
	"context"
	"time"
)

// Clock reads monotonic time and schedules work in the future.
//
// Implementations must be safe for concurrent use. Times returned by Now are
// only meaningful to the same Clock's Since and to comparisons with each other;
// they are not wall-clock instants to be sent to another machine.
type Clock interface {
	// Now returns the current time, carrying a monotonic reading.
	Now() time.Time
	// Since returns the time elapsed since t, measured monotonically.
	Since(t time.Time) time.Duration
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine once d has elapsed, unless the
	// returned timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a single-shot timer created by a Clock.
type Timer interface {
	// C returns the channel on which the firing time is delivered. It is nil
	// for timers created by AfterFunc.
	C() <-chan time.Time
	// Stop prevents the timer from firing. It reports whether it stopped the
	// timer before it fired.
	Stop() bool
}

// Sleep waits for d on c, or until ctx ends, whichever comes first. It returns
// ctx.Err() when the context ended first and nil otherwise. A non-positive d
// returns at once (after checking ctx).
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Real is the Clock of the running process: time.Now with its monotonic
// reading. The zero value is ready to use.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Since returns time.Since(t).
func (Real) Since(t time.Time) time.Duration { return time.Since(t) }

// NewTimer wraps time.NewTimer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// AfterFunc wraps time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return realTimer{time.AfterFunc(d, f)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }
