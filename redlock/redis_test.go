package redlock_test

// Tests against real redis-server processes (internal/redistest): what
// depends on Redis itself — Lua semantics, expiry, connections, restarts.
// They skip loudly without redis-server and fail instead when
// QUORUMLOCK_REQUIRE_REDIS=1.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/history"
	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// realLocker returns a Locker on the real clock over fresh pools to servers,
// closed when the test ends. Its node timeout is a generous 2s unless opts
// say otherwise: a loaded test machine must not turn into failed rounds.
func realLocker(t *testing.T, servers []*redistest.Server, opts ...redlock.Option) (*redlock.Locker, []pool.Pool) {
	t.Helper()
	pools := redistest.Pools(t, servers)
	lk, err := redlock.New(pools, append([]redlock.Option{redlock.WithNodeTimeout(2 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lk.Close() })
	return lk, pools
}

// do runs one plain command on a server over its own connection.
func do(t *testing.T, s *redistest.Server, cmd string, args ...any) any {
	t.Helper()
	c, err := redis.Dial("tcp", s.Addr, redis.DialConnectTimeout(2*time.Second), redis.DialReadTimeout(2*time.Second))
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	defer c.Close()
	reply, err := c.Do(cmd, args...)
	if err != nil {
		t.Fatalf("%s on %s: %v", cmd, s.Addr, err)
	}
	return reply
}

// value returns the string at key on s, and false when the key is absent.
func value(t *testing.T, s *redistest.Server, key string) (string, bool) {
	t.Helper()
	v, err := redis.String(do(t, s, "GET", key), nil)
	if errors.Is(err, redis.ErrNil) {
		return "", false
	}
	if err != nil {
		t.Fatalf("GET %s on %s: %v", key, s.Addr, err)
	}
	return v, true
}

func realCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Two Lockers with their own pools, eight goroutines in all, contend for one
// name: at no time do two of them hold it.
func TestRedisMutualExclusion(t *testing.T) {
	servers := redistest.Start(t, 3)
	lockers := []*redlock.Locker{}
	for range 2 {
		lk, _ := realLocker(t, servers)
		lockers = append(lockers, lk)
	}
	const goroutines, rounds = 4, 25
	rec := history.NewRecorder(clock.Real{})
	var holders, maxHolders, done atomic.Int32
	ctx := realCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 2*goroutines)
	for li, lk := range lockers {
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				who := fmt.Sprintf("locker%d/g%d", li, g)
				for range rounds {
					l, err := lk.Obtain(ctx, "counter", 5*time.Second)
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
					released := rec.Now()
					rec.Add(history.Section{Holder: who, Name: "counter", Acquired: acquired, ValidUntil: l.ValidUntil(), Released: released})
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
	if got, want := done.Load(), int32(2*goroutines*rounds); got != want {
		t.Errorf("%d critical sections, want %d", got, want)
	}
	if res := history.Check(rec.Sections()); !res.OK() {
		t.Errorf("history: %v", res)
	}
}

// Only the owner's token deletes or extends a key: another Locker's Lock, a
// foreign token, or a former owner whose lock expired change nothing.
func TestRedisNonOwner(t *testing.T) {
	servers := redistest.Start(t, 3)
	lkA, _ := realLocker(t, servers)
	lkB, poolsB := realLocker(t, servers)
	ctx := realCtx(t)
	key := lockKey("owned")

	a, err := lkA.TryObtain(ctx, "owned", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The round was decided by two nodes; the third answers a little later.
	eventually(t, "every node holds A's key", func() bool {
		for _, s := range servers {
			if v, ok := value(t, s, key); !ok || v != a.Token() {
				return false
			}
		}
		return true
	})
	if _, err := lkB.TryObtain(ctx, "owned", time.Second); !errors.Is(err, redlock.ErrHeld) {
		t.Fatalf("second Locker's TryObtain = %v, want ErrHeld", err)
	}
	for _, p := range poolsB {
		for _, s := range []*pool.Script{scripts.Release, scripts.Extend} {
			args := []any{"not-" + a.Token()}
			if s == scripts.Extend {
				args = append(args, "60000")
			}
			reply, err := p.Eval(ctx, s, []string{key}, args...)
			if ok, derr := scripts.DecodeFlag(reply); err != nil || derr != nil || ok {
				t.Errorf("%s with a foreign token on %s = %v, %v", s.Name, p.Addr(), reply, err)
			}
		}
	}
	for _, s := range servers {
		if v, ok := value(t, s, key); !ok || v != a.Token() {
			t.Errorf("%s: A's key is %q, %v after foreign calls", s.Addr, v, ok)
		}
		if pttl, _ := redis.Int64(do(t, s, "PTTL", key), nil); pttl > 10000 {
			t.Errorf("%s: a foreign Extend moved the TTL to %dms", s.Addr, pttl)
		}
	}

	// A's keys expire on Redis (made to, while A's own validity still
	// runs); B takes the lock; A's Release and Extend reach the nodes and
	// must leave B's key alone.
	for _, s := range servers {
		do(t, s, "PEXPIRE", key, 1)
	}
	eventually(t, "A's key expires", func() bool {
		for _, s := range servers {
			if _, ok := value(t, s, key); ok {
				return false
			}
		}
		return true
	})
	b, err := lkB.TryObtain(ctx, "owned", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a.TTL() <= 0 {
		t.Fatal("A's validity ran out: the nodes' answers are not what is tested")
	}
	if err := a.Extend(ctx, time.Minute); !errors.Is(err, redlock.ErrNotHeld) {
		t.Errorf("former owner's Extend = %v, want ErrNotHeld", err)
	}
	if err := a.Release(ctx); !errors.Is(err, redlock.ErrNotHeld) {
		t.Errorf("former owner's Release = %v, want ErrNotHeld", err)
	}
	if err := lkA.Close(); err != nil { // let every call of A land
		t.Fatal(err)
	}
	for _, s := range servers {
		if v, ok := value(t, s, key); !ok || v != b.Token() {
			t.Errorf("%s: B's key is %q, %v after A's release", s.Addr, v, ok)
		}
	}
	if err := b.Release(ctx); err != nil {
		t.Errorf("B's Release: %v", err)
	}
}

// Extend fails with ErrNotHeld once the keys are gone: expired on Redis, or
// deleted behind the owner's back while its validity still runs.
func TestRedisExtendAfterExpiry(t *testing.T) {
	servers := redistest.Start(t, 3)
	lk, _ := realLocker(t, servers)
	ctx := realCtx(t)

	l, err := lk.TryObtain(ctx, "short", 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the keys expire on Redis", func() bool {
		for _, s := range servers {
			if _, ok := value(t, s, lockKey("short")); ok {
				return false
			}
		}
		return true
	})
	if err := l.Extend(ctx, time.Second); !errors.Is(err, redlock.ErrNotHeld) {
		t.Errorf("Extend after expiry = %v, want ErrNotHeld", err)
	}

	l, err = lk.TryObtain(ctx, "deleted", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "every node holds the key", func() bool {
		for _, s := range servers {
			if _, ok := value(t, s, lockKey("deleted")); !ok {
				return false
			}
		}
		return true
	})
	for _, s := range servers {
		do(t, s, "DEL", lockKey("deleted"))
	}
	err = l.Extend(ctx, time.Minute)
	if !errors.Is(err, redlock.ErrNotHeld) {
		t.Fatalf("Extend of deleted keys = %v, want ErrNotHeld", err)
	}
	if qe := quorumError(t, err); qe.Op != "extend" {
		t.Errorf("Op = %q", qe.Op)
	}
	if err := l.Release(ctx); !errors.Is(err, redlock.ErrNotHeld) {
		t.Errorf("Release of deleted keys = %v, want ErrNotHeld", err)
	}
}

// With a minority of nodes killed locks still work; with a majority killed
// every attempt fails with a clear no-quorum error naming the dead nodes;
// once they are back, locks work again.
func TestRedisNodesKilled(t *testing.T) {
	servers := redistest.Start(t, 5)
	lk, _ := realLocker(t, servers, redlock.WithNodeTimeout(500*time.Millisecond))
	ctx := realCtx(t)
	for _, s := range servers[:2] {
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		l, err := lk.TryObtain(ctx, "k", time.Second)
		if err != nil {
			t.Fatalf("round %d with 2 of 5 nodes down: %v", i, err)
		}
		if err := l.Extend(ctx, time.Second); err != nil {
			t.Fatalf("round %d: Extend with 2 of 5 nodes down: %v", i, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("round %d: Release with 2 of 5 nodes down: %v", i, err)
		}
	}
	if err := servers[2].Kill(); err != nil {
		t.Fatal(err)
	}
	_, err := lk.TryObtain(ctx, "k", time.Second)
	if !errors.Is(err, redlock.ErrNoQuorum) || errors.Is(err, redlock.ErrHeld) {
		t.Fatalf("TryObtain with 3 of 5 nodes down = %v, want ErrNoQuorum", err)
	}
	msg := err.Error()
	for _, s := range servers[:3] {
		if !strings.Contains(msg, s.Addr+": error") {
			t.Errorf("the error does not name dead node %s: %s", s.Addr, msg)
		}
	}
	if !strings.Contains(msg, "3 needed") {
		t.Errorf("the error does not state the quorum: %s", msg)
	}
	// Obtain keeps trying and gives the last reason when its context ends.
	shortCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = lk.Obtain(shortCtx, "k", time.Second)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, redlock.ErrNoQuorum) {
		t.Errorf("Obtain with 3 of 5 nodes down = %v, want DeadlineExceeded and ErrNoQuorum", err)
	}
	for _, s := range servers[:3] {
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
	}
	l, err := lk.Obtain(ctx, "k", time.Second)
	if err != nil {
		t.Fatalf("Obtain after the nodes came back: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Errorf("Release after the nodes came back: %v", err)
	}
}

// Scripts are run by SHA: after SCRIPT FLUSH, or a restart, the nodes answer
// NOSCRIPT and the pools load the scripts again.
func TestRedisNoScriptRecovery(t *testing.T) {
	servers := redistest.Start(t, 3)
	lk, _ := realLocker(t, servers)
	ctx := realCtx(t)
	cycle := func(what string) {
		t.Helper()
		l, err := lk.TryObtain(ctx, "ns", time.Second)
		if err != nil {
			t.Fatalf("%s: TryObtain: %v", what, err)
		}
		if err := l.Extend(ctx, time.Second); err != nil {
			t.Fatalf("%s: Extend: %v", what, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("%s: Release: %v", what, err)
		}
	}
	cycle("first use")
	loads := make([]int, len(servers))
	for i, s := range servers {
		loads[i] = commandCalls(t, s, "script|load")
		do(t, s, "SCRIPT", "FLUSH")
	}
	cycle("after SCRIPT FLUSH on every node")
	for i, s := range servers {
		// A node the cycle did not wait for (each step needs a quorum only)
		// may get its calls a little later.
		eventually(t, s.Addr+" loads the scripts again after the flush", func() bool {
			return commandCalls(t, s, "script|load") > loads[i]
		})
	}

	// A restart loses the scripts too. The first call on a pooled
	// connection to the old process may fail (see pool/redigo_test.go);
	// Obtain retries, and the node must come back into the quorum.
	if err := servers[0].Kill(); err != nil {
		t.Fatal(err)
	}
	if err := servers[0].Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the restarted node grants again", func() bool {
		l, err := lk.Obtain(ctx, "ns-restart", time.Minute)
		if err != nil {
			t.Fatalf("Obtain after a restart: %v", err)
		}
		v, ok := value(t, servers[0], lockKey("ns-restart"))
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release after a restart: %v", err)
		}
		return ok && v == l.Token()
	})
	// A free lock is granted without a script (scripts.FreeAcquire), but
	// its release runs one, which the restarted node must load again.
	eventually(t, servers[0].Addr+" loads the scripts again after its restart", func() bool {
		return commandCalls(t, servers[0], "script|load") > 0
	})
}

// commandCalls returns how many times cmd ran on s since its start, from
// INFO commandstats (subcommands as "script|load").
func commandCalls(t *testing.T, s *redistest.Server, cmd string) int {
	t.Helper()
	info, err := redis.String(do(t, s, "INFO", "commandstats"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			var n int
			fmt.Sscanf(rest, "%d", &n)
			return n
		}
	}
	return 0
}

// A paused node (SIGSTOP: connections open, no answers) does not hold up a
// round that a quorum decides, nor Release; the straggler is bounded by the
// node timeout, so Close returns.
func TestRedisPausedNode(t *testing.T) {
	servers := redistest.Start(t, 3)
	lk, _ := realLocker(t, servers, redlock.WithNodeTimeout(200*time.Millisecond))
	ctx := realCtx(t)
	if err := servers[2].Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = servers[2].Resume() })
	for i := range 3 {
		l, err := lk.TryObtain(ctx, "paused", 5*time.Second)
		if err != nil {
			t.Fatalf("round %d with a paused node: %v", i, err)
		}
		if err := l.Extend(ctx, 5*time.Second); err != nil {
			t.Fatalf("round %d: Extend with a paused node: %v", i, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("round %d: Release with a paused node: %v", i, err)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- lk.Close() }()
	if err := recv(t, "Close with a paused node", closed); err != nil {
		t.Fatal(err)
	}
}

// A key of another type is reported as ErrWrongType; when only a minority
// of nodes has one, the others make the quorum.
func TestRedisWrongType(t *testing.T) {
	servers := redistest.Start(t, 3)
	lk, _ := realLocker(t, servers)
	ctx := realCtx(t)
	for _, s := range servers[:2] {
		do(t, s, "LPUSH", lockKey("list"), "x")
	}
	_, err := lk.Obtain(ctx, "list", time.Second)
	if !errors.Is(err, redlock.ErrWrongType) || !errors.Is(err, pool.ErrWrongType) {
		t.Fatalf("Obtain over a list on 2 of 3 nodes = %v, want ErrWrongType", err)
	}
	if !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("the error does not show the node's reply: %v", err)
	}
	// The failed attempt's call to the third node may land after Obtain
	// returned (the two lists decided the round): wait for it and for its
	// clean-up, two script calls.
	eventually(t, "the failed attempt is cleaned up", func() bool {
		stats, _ := redis.String(do(t, servers[2], "INFO", "commandstats"), nil)
		_, ok := value(t, servers[2], lockKey("list"))
		return strings.Contains(stats, "cmdstat_evalsha:calls=2,") && !ok
	})
	do(t, servers[0], "DEL", lockKey("list"))
	l, err := lk.TryObtain(ctx, "list", time.Second)
	if err != nil {
		t.Fatalf("TryObtain over a list on 1 of 3 nodes: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Errorf("Release: %v", err)
	}
	if n, _ := redis.Int(do(t, servers[1], "LLEN", lockKey("list")), nil); n != 1 {
		t.Errorf("the list was changed: LLEN = %d", n)
	}
}
