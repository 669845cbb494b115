package redlock_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/redlock"
)

// A node whose answers grow slower is still counted: the Locker has timed it
// at 150ms (within the 200ms lower bound for a 2s TTL), so when it slows to
// 400ms the round waits for it; with a fixed 200ms timeout it is failed.
func TestNodeTimeoutAdaptsToASlowNode(t *testing.T) {
	const ttl = 2 * time.Second
	for _, adaptive := range []bool{true, false} {
		t.Run(fmt.Sprintf("adaptive=%v", adaptive), func(t *testing.T) {
			c := newCluster(t, 3)
			var opts []redlock.Option
			if !adaptive {
				opts = append(opts, redlock.WithNodeTimeout(200*time.Millisecond))
			}
			lk := c.locker(opts...)
			ctx := context.Background()
			far := c.nodes[2]

			// The far node answers in 150ms, as a straggler of a round the
			// near nodes decided.
			far.SetDelay(150 * time.Millisecond)
			before, _ := far.Calls()
			if _, err := within(t, "first lock", func() result {
				l, err := lk.TryObtain(ctx, "warm", ttl)
				return result{l, err}
			}).unpack(); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the far node got the call", func() bool { n, _ := far.Calls(); return n > before })
			time.Sleep(2 * time.Millisecond)
			c.clock.Advance(150 * time.Millisecond)
			eventually(t, "the far node answered", func() bool { _, n := far.Calls(); return n > 0 })
			time.Sleep(2 * time.Millisecond)

			// It slows to 400ms, and it is needed.
			far.SetDelay(400 * time.Millisecond)
			c.nodes[1].Fail(errDown)
			before, _ = far.Calls()
			ch := start(func() (*redlock.Lock, error) { return lk.TryObtain(ctx, "x", ttl) })
			eventually(t, "the far node got the call", func() bool { n, _ := far.Calls(); return n > before })
			time.Sleep(2 * time.Millisecond)
			c.clock.Advance(200 * time.Millisecond)
			time.Sleep(2 * time.Millisecond)
			c.clock.Advance(200 * time.Millisecond)
			r := within(t, "TryObtain", func() result { return <-ch })
			switch {
			case adaptive && r.err != nil:
				t.Fatalf("with an adaptive timeout: %v", r.err)
			case !adaptive && !errors.Is(r.err, redlock.ErrNoQuorum):
				t.Fatalf("with a fixed 200ms timeout = %v, want ErrNoQuorum", r.err)
			}
		})
	}
}

// A hung node never answers, so it never makes the rounds wait longer.
func TestHungNodeDoesNotStretchTheTimeout(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker()
	ctx := context.Background()
	c.nodes[2].Hang()
	for i := 0; i < 3; i++ {
		l, err := within(t, "lock", func() result {
			l, err := lk.TryObtain(ctx, "k", time.Second)
			return result{l, err}
		}).unpack()
		if err != nil {
			t.Fatal(err)
		}
		_ = l.Release(ctx)
	}
	c.nodes[1].Fail(errDown)
	near, _ := c.nodes[1].Calls()
	ch := start(func() (*redlock.Lock, error) { return lk.TryObtain(ctx, "k2", time.Second) })
	// Drive the clock only once the round waits on it.
	eventually(t, "the round started", func() bool { n, _ := c.nodes[1].Calls(); return n > near })
	time.Sleep(2 * time.Millisecond)
	// The default lower bound for a 1s TTL is 100ms: the round gives up then,
	// with the clock going no further.
	c.clock.Advance(100 * time.Millisecond)
	r := within(t, "TryObtain", func() result { return <-ch })
	if !errors.Is(r.err, redlock.ErrNoQuorum) {
		t.Fatalf("TryObtain = %v, want ErrNoQuorum", r.err)
	}
}
