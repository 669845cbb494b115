package memnode

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/quorumlock/quorumlock/clock"
)

// SkewClock is one host's own clock, read through a shared base clock (true
// time) with a rate and an offset of its own. Redis expires keys by its
// host's clock, so a Node built on a SkewClock that runs fast, or is stepped
// forward, expires keys early in true time: that is how a simulation gives
// each node clock drift and jumps while every other party keeps true time.
//
// It is safe for concurrent use. Changing the rate or stepping the clock does
// not move timers already set on it.
type SkewClock struct {
	base clock.Clock

	mu         sync.Mutex
	anchorBase time.Time // base reading when the rate or offset last changed
	anchorSelf time.Time // this clock's reading at that moment
	rate       float64
}

var _ clock.Clock = (*SkewClock)(nil)

// NewSkewClock returns a clock that reads the same as base and runs at its
// rate until told otherwise.
func NewSkewClock(base clock.Clock) *SkewClock {
	now := base.Now()
	return &SkewClock{base: base, anchorBase: now, anchorSelf: now, rate: 1}
}

// Now returns this clock's reading.
func (c *SkewClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readLocked(c.base.Now())
}

func (c *SkewClock) readLocked(base time.Time) time.Time {
	return c.anchorSelf.Add(time.Duration(float64(base.Sub(c.anchorBase)) * c.rate))
}

// Since returns the time elapsed on this clock since t.
func (c *SkewClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// NewTimer returns a timer that fires once d has elapsed on this clock at
// its current rate.
func (c *SkewClock) NewTimer(d time.Duration) clock.Timer { return c.base.NewTimer(c.toBase(d)) }

// AfterFunc calls f in its own goroutine once d has elapsed on this clock at
// its current rate, unless the timer is stopped first.
func (c *SkewClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return c.base.AfterFunc(c.toBase(d), f)
}

// toBase converts a duration on this clock into base time, rounding up so a
// timer never fires before its time has elapsed here.
func (c *SkewClock) toBase(d time.Duration) time.Duration {
	c.mu.Lock()
	r := c.rate
	c.mu.Unlock()
	if d <= 0 {
		return d
	}
	return time.Duration(math.Ceil(float64(d) / r))
}

// SetRate makes the clock advance rate seconds per second of base time from
// now on: above 1 it runs fast, below 1 slow. Its current reading is kept.
// It panics when rate is not a finite positive number, a programming error.
func (c *SkewClock) SetRate(rate float64) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		panic(fmt.Sprintf("memnode: clock rate %v is not a finite positive number", rate))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.base.Now()
	c.anchorSelf, c.anchorBase = c.readLocked(b), b
	c.rate = rate
}

// Rate returns the current rate (1: in step with the base clock).
func (c *SkewClock) Rate() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rate
}

// Jump steps the clock by d at once, as an operator or NTP setting the time
// would: forward when d is positive, back when negative.
func (c *SkewClock) Jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.base.Now()
	c.anchorSelf, c.anchorBase = c.readLocked(b).Add(d), b
}

// Offset returns how far this clock reads ahead of the base clock (negative:
// behind).
func (c *SkewClock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.base.Now()
	return c.readLocked(b).Sub(b)
}
