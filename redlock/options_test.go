package redlock_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/memnode"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// dialed returns pools for URLs without connecting (Dial never does).
func dialed(t *testing.T, urls ...string) []pool.Pool {
	t.Helper()
	ps := make([]pool.Pool, len(urls))
	for i, u := range urls {
		p, err := pool.Dial(u)
		if err != nil {
			t.Fatalf("Dial(%q): %v", u, err)
		}
		t.Cleanup(func() { _ = p.Close() })
		ps[i] = p
	}
	return ps
}

// New refuses every configuration that could count one server twice or
// compute a meaningless validity, and contacts no node.
func TestNewRejects(t *testing.T) {
	fc := clock.NewFake(epoch)
	a, b := memnode.New("10.0.0.1:6379", fc), memnode.New("10.0.0.2:6379", fc)
	for _, tc := range []struct {
		name  string
		nodes func(t *testing.T) []pool.Pool
		opts  []redlock.Option
	}{
		{name: "nil nodes", nodes: func(*testing.T) []pool.Pool { return nil }},
		{name: "no nodes", nodes: func(*testing.T) []pool.Pool { return []pool.Pool{} }},
		{name: "nil node", nodes: func(*testing.T) []pool.Pool { return []pool.Pool{a, nil, b} }},
		{name: "same node twice", nodes: func(*testing.T) []pool.Pool { return []pool.Pool{a, b, a} }},
		{name: "same address twice", nodes: func(*testing.T) []pool.Pool {
			return []pool.Pool{a, memnode.New("10.0.0.1:6379", fc)}
		}},
		{name: "same address, other case", nodes: func(*testing.T) []pool.Pool {
			return []pool.Pool{memnode.New("Redis-A.example:6379", fc), memnode.New("redis-a.example:6379", fc)}
		}},
		{name: "same server by URL, default port", nodes: func(t *testing.T) []pool.Pool {
			return dialed(t, "redis://127.0.0.1", "redis://127.0.0.1:6379")
		}},
		{name: "same server by URL, other database", nodes: func(t *testing.T) []pool.Pool {
			return dialed(t, "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1")
		}},
		{name: "same server by URL, other user", nodes: func(t *testing.T) []pool.Pool {
			return dialed(t, "redis://alice:pw@10.1.1.1:6380", "redis://bob:pw@10.1.1.1:6380", "redis://10.1.1.2:6380")
		}},
		{name: "negative drift factor", nodes: two(a, b), opts: []redlock.Option{redlock.WithDriftFactor(-0.01)}},
		{name: "drift factor 0.5", nodes: two(a, b), opts: []redlock.Option{redlock.WithDriftFactor(0.5)}},
		{name: "drift factor 1", nodes: two(a, b), opts: []redlock.Option{redlock.WithDriftFactor(1)}},
		{name: "drift factor NaN", nodes: two(a, b), opts: []redlock.Option{redlock.WithDriftFactor(math.NaN())}},
		{name: "drift factor +Inf", nodes: two(a, b), opts: []redlock.Option{redlock.WithDriftFactor(math.Inf(1))}},
		{name: "nil clock", nodes: two(a, b), opts: []redlock.Option{redlock.WithClock(nil)}},
		{name: "negative node timeout", nodes: two(a, b), opts: []redlock.Option{redlock.WithNodeTimeout(-time.Millisecond)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lk, err := redlock.New(tc.nodes(t), tc.opts...)
			if lk != nil || !errors.Is(err, redlock.ErrInvalid) {
				t.Fatalf("New = %v, %v; want ErrInvalid", lk, err)
			}
		})
	}
	for _, n := range []*memnode.Node{a, b} {
		if recv, _ := n.Calls(); recv != 0 {
			t.Errorf("New contacted %s", n.Addr())
		}
	}
}

func two(a, b pool.Pool) func(*testing.T) []pool.Pool {
	return func(*testing.T) []pool.Pool { return []pool.Pool{a, b} }
}

// A nil pointer of a Pool type is a nil node too, as a Pool returned with an
// error by pool.Dial would be: New must refuse it, not panic.
func TestNewRejectsTypedNilNode(t *testing.T) {
	var bad *pool.Redigo // as from `p, err := pool.Dial(badURL)` with err ignored
	good := memnode.New("10.0.0.1:6379", clock.NewFake(epoch))
	var (
		lk  *redlock.Locker
		err error
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("New panicked on a nil *pool.Redigo: %v", r)
			}
		}()
		lk, err = redlock.New([]pool.Pool{good, bad})
	}()
	if lk != nil || !errors.Is(err, redlock.ErrInvalid) {
		t.Fatalf("New = %v, %v; want ErrInvalid", lk, err)
	}
}

func TestNewAccepts(t *testing.T) {
	for n := 1; n <= 7; n++ {
		c := newCluster(t, n)
		nodes := c.pools()
		lk := newLocker(t, c.clock, nodes, redlock.WithDriftFactor(0), redlock.WithBackoff(nil))
		if got, want := lk.Quorum(), n/2+1; got != want {
			t.Errorf("N=%d: Quorum() = %d, want %d", n, got, want)
		}
		addrs := lk.Nodes()
		if len(addrs) != n {
			t.Fatalf("N=%d: Nodes() = %v", n, addrs)
		}
		for i, a := range addrs {
			if a != nodes[i].Addr() {
				t.Errorf("N=%d: Nodes()[%d] = %s, want %s (the order given to New)", n, i, a, nodes[i].Addr())
			}
		}
		// The Locker keeps its own copy of the list.
		nodes[0] = memnode.New("10.9.9.9:6379", c.clock)
		addrs[0] = "changed"
		if got := lk.Nodes()[0]; got != c.nodes[0].Addr() {
			t.Errorf("N=%d: the Locker's node list changed with the caller's slice: %s", n, got)
		}
	}
	c := newCluster(t, 3)
	newLocker(t, c.clock, c.pools(), redlock.WithDriftFactor(0.4999))
}

// Keys are the prefix followed by the name; Lockers with different prefixes
// do not contend.
func TestKeyPrefix(t *testing.T) {
	c := newCluster(t, 3)
	def := c.locker()
	app := c.locker(redlock.WithKeyPrefix("app:"))
	bare := c.locker(redlock.WithKeyPrefix(""))
	for _, tc := range []struct {
		lk  *redlock.Locker
		key string
	}{
		{def, redlock.DefaultKeyPrefix + "job"},
		{app, "app:job"},
		{bare, "job"},
	} {
		obtainUnderKey(t, c, tc.lk, "job", tc.key)
	}
}

// obtainUnderKey obtains name and checks that every node holds key.
func obtainUnderKey(t *testing.T, c *cluster, lk *redlock.Locker, name, key string) *redlock.Lock {
	t.Helper()
	l, err := lk.TryObtain(t.Context(), name, time.Minute)
	if err != nil {
		t.Errorf("TryObtain under key %q: %v", key, err)
		return nil
	}
	eventually(t, fmt.Sprintf("every node holds %q", key), func() bool {
		for _, n := range c.nodes {
			if val, _, ok := n.Get(key); !ok || val != l.Token() {
				return false
			}
		}
		return true
	})
	return l
}

// Each node's answer is bounded by the node timeout: by default a tenth of
// the TTL between 100ms and 1s, never more than the TTL minus the drift
// allowance; WithNodeTimeout sets it, still capped by that budget.
func TestNodeTimeout(t *testing.T) {
	for _, tc := range []struct {
		ttl, option, want time.Duration
	}{
		{ttl: 20 * time.Millisecond, want: 20*time.Millisecond - drift(20*time.Millisecond)},
		{ttl: 500 * time.Millisecond, want: 100 * time.Millisecond},
		{ttl: 3 * time.Second, want: 300 * time.Millisecond},
		{ttl: time.Minute, want: time.Second},
		{ttl: time.Second, option: 30 * time.Millisecond, want: 30 * time.Millisecond},
		{ttl: time.Second, option: time.Hour, want: time.Second - drift(time.Second)},
	} {
		t.Run(fmt.Sprintf("ttl=%v/option=%v", tc.ttl, tc.option), func(t *testing.T) {
			c := newCluster(t, 1)
			c.nodes[0].Hang()
			var opts []redlock.Option
			if tc.option != 0 {
				opts = append(opts, redlock.WithNodeTimeout(tc.option))
			}
			lk := c.locker(opts...)
			ch := start(func() (*redlock.Lock, error) { return lk.TryObtain(t.Context(), "nt", tc.ttl) })
			r, at := driveUntil(t, c.clock, epoch.Add(tc.want), ch)
			if got := at.Sub(epoch); got != tc.want {
				t.Errorf("a hung node was given up after %v, want %v", got, tc.want)
			}
			if !errors.Is(r.err, redlock.ErrNoQuorum) {
				t.Fatalf("TryObtain = %v, want ErrNoQuorum", r.err)
			}
			// (Its Latency is not checked: the clock may jump while the
			// round is still being set up.)
			if v := quorumError(t, r.err).Votes[0]; !v.Answered || v.Err == nil || v.Latency > tc.want {
				t.Errorf("vote of the hung node = %+v, want a timeout after %v", v, tc.want)
			}
		})
	}
}

func TestBackoffs(t *testing.T) {
	t.Run("NoRetry", func(t *testing.T) {
		if _, again := redlock.NoRetry().Next(1); again {
			t.Error("NoRetry retries")
		}
	})
	t.Run("ConstantBackoff", func(t *testing.T) {
		b := redlock.ConstantBackoff(7 * time.Millisecond)
		for f := 1; f < 100; f++ {
			if d, again := b.Next(f); d != 7*time.Millisecond || !again {
				t.Fatalf("Next(%d) = %v, %v", f, d, again)
			}
		}
	})
	t.Run("RandomBackoff", func(t *testing.T) {
		lo, hi := 2*time.Millisecond, 5*time.Millisecond
		b := redlock.RandomBackoff(lo, hi)
		seen := map[time.Duration]bool{}
		for f := 1; f < 2000; f++ {
			d, again := b.Next(f)
			if d < lo || d > hi || !again {
				t.Fatalf("Next(%d) = %v, %v; want a wait in [%v, %v]", f, d, again, lo, hi)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("only %d distinct waits in 2000 draws: not random", len(seen))
		}
	})
	t.Run("ExponentialBackoff", func(t *testing.T) {
		lo, hi := 2*time.Millisecond, 256*time.Millisecond
		b := redlock.ExponentialBackoff(lo, hi)
		for f := 1; f <= 20; f++ {
			ceil := min(lo<<min(f-1, 30), hi)
			var top time.Duration
			for range 500 {
				d, again := b.Next(f)
				if d < lo || d > ceil || !again {
					t.Fatalf("Next(%d) = %v, %v; want a wait in [%v, %v]", f, d, again, lo, ceil)
				}
				top = max(top, d)
			}
			if f > 1 && top <= ceil/2 {
				t.Errorf("Next(%d): largest of 500 waits %v, the range reaches %v", f, top, ceil)
			}
		}
	})
	t.Run("LimitAttempts", func(t *testing.T) {
		b := redlock.LimitAttempts(redlock.ConstantBackoff(time.Millisecond), 3)
		for f, want := range map[int]bool{1: true, 2: true, 3: false, 4: false} {
			if _, again := b.Next(f); again != want {
				t.Errorf("after %d failures: again = %v, want %v", f, again, want)
			}
		}
	})
	t.Run("BackoffFunc", func(t *testing.T) {
		var got []int
		b := redlock.BackoffFunc(func(f int) (time.Duration, bool) { got = append(got, f); return time.Duration(f), f < 3 })
		for f := 1; f <= 3; f++ {
			b.Next(f)
		}
		if fmt.Sprint(got) != "[1 2 3]" {
			t.Errorf("BackoffFunc saw %v", got)
		}
	})
}

// A node cut off by the node timeout reports a deadline, not a cancellation:
// errors.Is(vote.Err, context.Canceled) would read as "the caller gave up".
func TestNodeTimeoutIsADeadline(t *testing.T) {
	c := newCluster(t, 1)
	c.nodes[0].Hang()
	lk := c.locker(redlock.WithNodeTimeout(50 * time.Millisecond))
	ch := start(func() (*redlock.Lock, error) { return lk.TryObtain(t.Context(), "dl", time.Second) })
	r, _ := driveUntil(t, c.clock, epoch.Add(50*time.Millisecond), ch)
	v := quorumError(t, r.err).Votes[0]
	if errors.Is(v.Err, context.Canceled) || !errors.Is(v.Err, context.DeadlineExceeded) {
		t.Errorf("vote error %v: matches Canceled %v, DeadlineExceeded %v; want a deadline only",
			v.Err, errors.Is(v.Err, context.Canceled), errors.Is(v.Err, context.DeadlineExceeded))
	}
}
