package memnode

import (
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/clock"
)

func TestSkewClockReading(t *testing.T) {
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	tests := []struct {
		name   string
		steps  func(f *clock.Fake, c *SkewClock)
		offset time.Duration
	}{
		{"in step", func(f *clock.Fake, c *SkewClock) { f.Advance(ms(100)) }, 0},
		{"fast", func(f *clock.Fake, c *SkewClock) { c.SetRate(1.5); f.Advance(ms(100)) }, ms(50)},
		{"slow", func(f *clock.Fake, c *SkewClock) { c.SetRate(0.5); f.Advance(ms(100)) }, ms(-50)},
		{"rate change keeps the reading", func(f *clock.Fake, c *SkewClock) {
			c.SetRate(2)
			f.Advance(ms(10))
			c.SetRate(1)
			f.Advance(ms(100))
		}, ms(10)},
		{"jump forward", func(f *clock.Fake, c *SkewClock) { c.Jump(ms(30)); f.Advance(ms(5)) }, ms(30)},
		{"jump back", func(f *clock.Fake, c *SkewClock) { c.Jump(ms(-30)) }, ms(-30)},
		{"jump then drift", func(f *clock.Fake, c *SkewClock) { c.Jump(ms(5)); c.SetRate(1.1); f.Advance(ms(100)) }, ms(15)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := clock.NewFake(time.Unix(1000, 0))
			c := NewSkewClock(f)
			tt.steps(f, c)
			if got := c.Offset(); got != tt.offset {
				t.Errorf("Offset() = %v, want %v", got, tt.offset)
			}
			if got := c.Now().Sub(f.Now()); got != tt.offset {
				t.Errorf("Now() - base = %v, want %v", got, tt.offset)
			}
		})
	}
}

func TestSkewClockTimerRunsOnOwnTime(t *testing.T) {
	f := clock.NewFake(time.Unix(1000, 0))
	c := NewSkewClock(f)
	c.SetRate(2)
	tm := c.NewTimer(100 * time.Millisecond) // 50ms of base time at rate 2
	f.Advance(49 * time.Millisecond)
	select {
	case <-tm.C():
		t.Fatal("timer fired before 100ms had elapsed on its clock")
	default:
	}
	f.Advance(time.Millisecond)
	select {
	case <-tm.C():
	default:
		t.Fatal("timer did not fire once 100ms had elapsed on its clock")
	}
}

func TestSkewClockSetRateRejectsNonPositive(t *testing.T) {
	for _, r := range []float64{0, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SetRate(%v) did not panic", r)
				}
			}()
			NewSkewClock(clock.NewFake(time.Unix(0, 0))).SetRate(r)
		}()
	}
}

// TestNodeExpiresBySkewedClock shows why node clocks matter to Redlock: a
// node whose clock runs fast or jumps forward drops a key early in true time.
func TestNodeExpiresBySkewedClock(t *testing.T) {
	tests := []struct {
		name  string
		skew  func(c *SkewClock)
		alive time.Duration // true time the 100ms key lives
	}{
		{"true clock", func(*SkewClock) {}, 100 * time.Millisecond},
		{"twice as fast", func(c *SkewClock) { c.SetRate(2) }, 50 * time.Millisecond},
		{"half as fast", func(c *SkewClock) { c.SetRate(0.5) }, 200 * time.Millisecond},
		{"jump forward 60ms", func(c *SkewClock) { c.Jump(60 * time.Millisecond) }, 40 * time.Millisecond},
		{"jump back 60ms", func(c *SkewClock) { c.Jump(-60 * time.Millisecond) }, 160 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := clock.NewFake(time.Unix(1000, 0))
			c := NewSkewClock(f)
			n := New("n1", c)
			n.Set("k", "v", 100*time.Millisecond)
			tt.skew(c)
			f.Advance(tt.alive - time.Microsecond)
			if _, _, ok := n.Get("k"); !ok {
				t.Fatalf("key gone before %v of true time", tt.alive)
			}
			f.Advance(time.Microsecond)
			if _, _, ok := n.Get("k"); ok {
				t.Fatalf("key still there after %v of true time", tt.alive)
			}
		})
	}
}
