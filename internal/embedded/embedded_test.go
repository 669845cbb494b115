package embedded_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/embedded"
	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// hangBound guards against a hang; it is not a speed requirement.
const hangBound = 10 * time.Second

func start(t *testing.T, n int) ([]*embedded.Node, []pool.Pool) {
	t.Helper()
	nodes, err := embedded.Start(n)
	if err != nil {
		t.Fatal(err)
	}
	pools := make([]pool.Pool, n)
	for i, node := range nodes {
		t.Cleanup(func() { _ = node.Close() })
		p, err := pool.Dial(node.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		pools[i] = p
	}
	return nodes, pools
}

func TestStartRejectsNoNodes(t *testing.T) {
	for _, n := range []int{0, -1} {
		if _, err := embedded.Start(n); err == nil {
			t.Errorf("Start(%d): no error", n)
		}
	}
}

func TestNodesAreDistinct(t *testing.T) {
	nodes, _ := start(t, 3)
	seen := map[string]bool{}
	for _, n := range nodes {
		if seen[n.Addr()] {
			t.Errorf("address %s used twice", n.Addr())
		}
		seen[n.Addr()] = true
		if want := "redis://" + n.Addr(); n.URL() != want {
			t.Errorf("URL() = %q, want %q", n.URL(), want)
		}
		if !strings.HasPrefix(n.Addr(), "127.0.0.1:") {
			t.Errorf("Addr() = %q, want a loopback address", n.Addr())
		}
	}
}

// TestScripts runs every script the coordinator sends to a node and checks
// the decoded replies: the embedded Lua must behave as Redis's for these.
func TestScripts(t *testing.T) {
	_, pools := start(t, 1)
	p := pools[0]
	ctx := t.Context()
	eval := func(s *pool.Script, keys []string, args ...any) any {
		t.Helper()
		v, err := p.Eval(ctx, s, keys, args...)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		return v
	}
	acquire := func(s *pool.Script, keys []string, token string) scripts.AcquireReply {
		t.Helper()
		r, err := scripts.DecodeAcquire(eval(s, keys, token, 10000))
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		return r
	}
	flag := func(s *pool.Script, keys []string, args ...any) bool {
		t.Helper()
		f, err := scripts.DecodeFlag(eval(s, keys, args...))
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		return f
	}
	keys := []string{"k", "boot", "fence"}

	first := acquire(scripts.AcquireFenced, keys, "token-one")
	if !first.Granted || first.Fence != 1 || first.MarkerAgeMs < 0 {
		t.Fatalf("first acquire: %+v, want granted with fence 1 and the marker's age", first)
	}
	second := acquire(scripts.Acquire, keys[:2], "token-two")
	if second.Granted || second.Holder != "token-on" || second.HolderTTLms <= 0 || second.HolderTTLms > 10000 {
		t.Fatalf("second acquire: %+v, want refused, holder \"token-on\", TTL in (0, 10000]", second)
	}
	if flag(scripts.Extend, []string{"k"}, "token-two", 20000) {
		t.Error("extend with another token succeeded")
	}
	if !flag(scripts.Extend, []string{"k"}, "token-one", 20000) {
		t.Error("extend by the holder failed")
	}
	flags, err := scripts.DecodeFlags(eval(scripts.ExtendMany, []string{"k", "absent"}, "token-one", 20000, "x", 20000), 2)
	if err != nil || !flags[0] || flags[1] {
		t.Errorf("extend-many: %v, %v; want [true false]", flags, err)
	}
	if !flag(scripts.RaiseFence, []string{"k", "fence"}, "token-one", 7) {
		t.Error("raise-fence: holder not recognised")
	}
	if next := acquire(scripts.AcquireFenced, []string{"k2", "boot", "fence"}, "t3"); next.Fence != 8 {
		t.Errorf("fence after raising to 7: %d, want 8", next.Fence)
	}
	in, err := scripts.DecodeInspect(eval(scripts.Inspect, []string{"k"}))
	if err != nil || !in.Exists || in.Value != "token-one" || in.PTTLms <= 10000 {
		t.Errorf("inspect: %+v, %v", in, err)
	}
	sc, err := scripts.DecodeScan(eval(scripts.Scan, nil, "0", "k*", 100))
	if err != nil || len(sc.Keys) != 2 {
		t.Errorf("scan: %+v, %v; want k and k2", sc, err)
	}
	if flag(scripts.Release, []string{"k"}, "token-two") {
		t.Error("release with another token succeeded")
	}
	if !flag(scripts.Release, []string{"k"}, "token-one") {
		t.Error("release by the holder failed")
	}
	if !flag(scripts.Release, []string{"k2"}, "t3") {
		t.Error("release of a second key by its holder failed")
	}
	n, err := scripts.Int(eval(scripts.Delete, []string{"fence", "absent"}))
	if err != nil || n != 1 {
		t.Errorf("delete: %d, %v; want 1", n, err)
	}

	// A lock key of another type is reported as WRONGTYPE.
	push := &pool.Script{Name: "push", Src: `return redis.call('RPUSH', KEYS[1], 'x')`}
	eval(push, []string{"list"})
	_, err = p.Eval(ctx, scripts.Acquire, []string{"list", "boot"}, "t", 1000)
	if !errors.Is(err, pool.ErrWrongType) {
		t.Errorf("acquire on a list: %v, want ErrWrongType", err)
	}
}

// TestKeysExpireInRealTime shows that a lock key runs out by the wall clock
// with nobody driving the node's time.
func TestKeysExpireInRealTime(t *testing.T) {
	_, pools := start(t, 1)
	ctx := t.Context()
	r, err := pools[0].Eval(ctx, scripts.Acquire, []string{"k", "boot"}, "t", 20)
	if g, _ := scripts.DecodeAcquire(r); err != nil || !g.Granted {
		t.Fatalf("acquire: %v, %v", r, err)
	}
	deadline := time.Now().Add(hangBound)
	for {
		in, err := pools[0].Eval(ctx, scripts.Inspect, []string{"k"})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := scripts.DecodeInspect(in); !got.Exists {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a key set with PX 20 still exists after %v", hangBound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReleaseNoticeIsPublished(t *testing.T) {
	_, pools := start(t, 1)
	ctx := t.Context()
	sub, err := pools[0].(pool.Subscriber).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Subscribe("k"); err != nil {
		t.Fatal(err)
	}
	if ev, err := sub.Receive(hangBound); err != nil || ev.Kind != pool.EventSubscribed {
		t.Fatalf("Receive: %+v, %v; want the subscription", ev, err)
	}
	if _, err := pools[0].Eval(ctx, scripts.Acquire, []string{"k", "boot"}, "t", 10000); err != nil {
		t.Fatal(err)
	}
	if _, err := pools[0].Eval(ctx, scripts.Release, []string{"k"}, "t"); err != nil {
		t.Fatal(err)
	}
	if ev, err := sub.Receive(hangBound); err != nil || ev != (pool.Event{Kind: pool.EventMessage, Channel: "k"}) {
		t.Fatalf("Receive: %+v, %v; want a message on k", ev, err)
	}
}

func TestObtainRelease(t *testing.T) {
	_, pools := start(t, 5)
	lk, err := redlock.New(pools)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	ctx := t.Context()
	l, err := lk.TryObtain(ctx, "job", 10*time.Second)
	if err != nil {
		t.Fatalf("TryObtain: %v", err)
	}
	if _, err := lk.TryObtain(ctx, "job", 10*time.Second); !errors.Is(err, redlock.ErrHeld) {
		t.Errorf("second TryObtain: %v, want ErrHeld", err)
	}
	if err := l.Extend(ctx, 10*time.Second); err != nil {
		t.Errorf("Extend: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	l, err = lk.TryObtain(ctx, "job", 10*time.Second)
	if err != nil {
		t.Fatalf("TryObtain after Release: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Errorf("Release: %v", err)
	}
}

// TestContention runs goroutines of two Lockers over the same nodes and fails
// if two of them are ever inside the critical section at once.
func TestContention(t *testing.T) {
	_, pools := start(t, 3)
	const lockers, goroutines, rounds = 2, 2, 15
	var inside, entered atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for li := range lockers {
		// A node timeout far above an in-process node's latency: a busy
		// machine must not turn into lost votes.
		lk, err := redlock.New(pools,
			redlock.WithBackoff(redlock.RandomBackoff(time.Millisecond, 5*time.Millisecond)),
			redlock.WithNodeTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer lk.Close()
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					l, err := lk.Obtain(ctx, "counter", 10*time.Second)
					if err != nil {
						t.Errorf("locker %d/%d: Obtain: %v", li, g, err)
						return
					}
					if n := inside.Add(1); n != 1 {
						t.Errorf("%d holders at once", n)
					}
					entered.Add(1)
					time.Sleep(100 * time.Microsecond)
					inside.Add(-1)
					if err := l.Release(ctx); err != nil {
						t.Errorf("locker %d/%d: Release: %v", li, g, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if got := entered.Load(); got != lockers*goroutines*rounds {
		t.Errorf("%d critical sections, want %d", got, lockers*goroutines*rounds)
	}
}

func TestKill(t *testing.T) {
	nodes, pools := start(t, 5)
	lk, err := redlock.New(pools, redlock.WithNodeTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// A first round opens connections (and the release notices'
	// subscriptions) that the kills below cut.
	l, err := lk.TryObtain(ctx, "job", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	kill := func(i int) {
		t.Helper()
		if err := nodes[i].Kill(); err != nil {
			t.Fatal(err)
		}
		if nodes[i].Running() {
			t.Fatalf("node %d still running after Kill", i)
		}
	}
	kill(0)
	kill(1)
	if err := nodes[1].Kill(); !errors.Is(err, embedded.ErrKilled) {
		t.Errorf("second Kill: %v, want ErrKilled", err)
	}
	// Obtain, not TryObtain: a node may not have applied the first
	// round's release yet (a release returns once a quorum has).
	l, err = lk.Obtain(ctx, "job", 10*time.Second)
	if err != nil {
		t.Fatalf("Obtain with 2 of 5 nodes killed: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release with 2 of 5 nodes killed: %v", err)
	}
	kill(2)
	if _, err := lk.TryObtain(ctx, "job", 10*time.Second); !errors.Is(err, redlock.ErrNoQuorum) {
		t.Fatalf("TryObtain with 3 of 5 nodes killed: %v, want ErrNoQuorum", err)
	}
}
