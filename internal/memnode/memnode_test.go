package memnode_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/memnode"
	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
)

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// hangBound guards waits for what must happen without the fake clock
// moving; it is not a speed requirement.
const hangBound = 10 * time.Second

var errDown = errors.New("node down")

func newNode() (*memnode.Node, *clock.Fake) {
	c := clock.NewFake(epoch)
	return memnode.New("10.0.0.1:6379", c), c
}

// eval runs s on n and fails t on an error.
func flag(t *testing.T, n *memnode.Node, s *pool.Script, key string, args ...any) bool {
	t.Helper()
	reply, err := n.Eval(context.Background(), s, []string{key}, args...)
	if err != nil {
		t.Fatalf("%s(%s): %v", s.Name, key, err)
	}
	ok, err := scripts.DecodeFlag(reply)
	if err != nil {
		t.Fatalf("%s(%s): %v", s.Name, key, err)
	}
	return ok
}

func TestAddr(t *testing.T) {
	n, _ := newNode()
	if n.Addr() != "10.0.0.1:6379" {
		t.Errorf("Addr() = %q", n.Addr())
	}
	var _ pool.Pool = n
}

// Keys expire by the node's clock, at their deadline exactly.
func TestExpiry(t *testing.T) {
	n, c := newNode()
	n.Set("k", "v", 100*time.Millisecond)
	n.Set("forever", "v", 0)
	if val, ttl, ok := n.Get("k"); !ok || val != "v" || ttl != 100*time.Millisecond {
		t.Fatalf("Get = %q, %v, %v", val, ttl, ok)
	}
	c.Advance(99 * time.Millisecond)
	if _, ttl, ok := n.Get("k"); !ok || ttl != time.Millisecond {
		t.Errorf("1ms before expiry: ttl %v, present %v", ttl, ok)
	}
	c.Advance(time.Millisecond)
	if _, _, ok := n.Get("k"); ok {
		t.Error("present at its expiry")
	}
	if _, ttl, ok := n.Get("forever"); !ok || ttl != -1 {
		t.Errorf("key without expiry: ttl %v, present %v", ttl, ok)
	}
	if _, _, ok := n.Get("absent"); ok {
		t.Error("absent key present")
	}
}

func TestFlush(t *testing.T) {
	n, _ := newNode()
	n.Set("a", "1", time.Minute)
	n.SetNonString("b")
	n.Flush()
	for _, k := range []string{"a", "b"} {
		if _, _, ok := n.Get(k); ok {
			t.Errorf("%s survived Flush", k)
		}
	}
}

func TestFail(t *testing.T) {
	n, _ := newNode()
	n.Set("k", "tok", time.Minute)
	n.Fail(errDown)
	if _, err := n.Eval(context.Background(), scripts.Release, []string{"k"}, "tok"); !errors.Is(err, errDown) {
		t.Fatalf("Eval on a failed node = %v, want its error", err)
	}
	if _, _, ok := n.Get("k"); !ok {
		t.Error("a failed node applied the call")
	}
	if recv, applied := n.Calls(); recv != 1 || applied != 0 {
		t.Errorf("Calls() = %d, %d; want 1 received, 0 applied", recv, applied)
	}
	n.Fail(nil)
	if !flag(t, n, scripts.Release, "k", "tok") {
		t.Error("a healed node did not release")
	}
	if recv, applied := n.Calls(); recv != 2 || applied != 1 {
		t.Errorf("Calls() = %d, %d; want 2, 1", recv, applied)
	}
}

// A hung node holds every call until its context ends or Unhang; then the
// call runs normally.
// HangNext hangs the next calls only: the one after them runs while they
// wait.
func TestHangNext(t *testing.T) {
	n, _ := newNode()
	n.Set("k", "tok", time.Minute)
	n.HangNext(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := n.Eval(ctx, scripts.Release, []string{"k"}, "other")
		done <- err
	}()
	for recv, _ := n.Calls(); recv < 1; recv, _ = n.Calls() {
		time.Sleep(100 * time.Microsecond)
	}
	if got, err := n.Eval(context.Background(), scripts.Release, []string{"k"}, "tok"); err != nil || got != int64(1) {
		t.Fatalf("the call after the hung one = %v, %v; want it run: 1", got, err)
	}
	select {
	case err := <-done:
		t.Fatalf("the hung call answered: %v", err)
	case <-time.After(10 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("hung call = %v, want context.Canceled", err)
	}
	// Unhang releases one that is still waiting.
	n.HangNext(1)
	go func() {
		_, err := n.Eval(context.Background(), scripts.Release, []string{"k"}, "other")
		done <- err
	}()
	for recv, _ := n.Calls(); recv < 3; recv, _ = n.Calls() {
		time.Sleep(100 * time.Microsecond)
	}
	n.Unhang()
	if err := <-done; err != nil {
		t.Fatalf("the call released by Unhang = %v, want it run", err)
	}
}

func TestHang(t *testing.T) {
	n, _ := newNode()
	n.Set("k", "tok", time.Minute)
	n.Hang()
	n.Hang() // idempotent
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := n.Eval(ctx, scripts.Release, []string{"k"}, "tok")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a hung node answered: %v", err)
	case <-time.After(10 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("hung call = %v, want context.Canceled", err)
	}
	if _, _, ok := n.Get("k"); !ok {
		t.Fatal("a cancelled hung call was applied")
	}
	go func() {
		_, err := n.Eval(context.Background(), scripts.Release, []string{"k"}, "tok")
		done <- err
	}()
	for recv, _ := n.Calls(); recv < 2; recv, _ = n.Calls() {
		time.Sleep(100 * time.Microsecond)
	}
	n.Unhang()
	n.Unhang() // idempotent
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hangBound):
		t.Fatal("Unhang did not release the call")
	}
	if _, _, ok := n.Get("k"); ok {
		t.Error("the call released by Unhang was not applied")
	}
}

// SetDelay makes every call wait on the node's clock.
func TestSetDelay(t *testing.T) {
	n, c := newNode()
	n.Set("k", "tok", time.Minute)
	n.SetDelay(10 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, err := n.Eval(context.Background(), scripts.Extend, []string{"k"}, "tok", 5000)
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	if err := c.WaitPending(ctx, 1); err != nil {
		t.Fatal(err)
	}
	c.Advance(10*time.Millisecond - 1)
	select {
	case <-done:
		t.Fatal("answered before its delay")
	default:
	}
	c.Advance(1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The call ran after the delay: the new TTL counts from then.
	if _, ttl, _ := n.Get("k"); ttl != 5*time.Second {
		t.Errorf("TTL after a delayed extend = %v, want 5s", ttl)
	}

	// A context that ends during the delay cancels the call.
	cctx, ccancel := context.WithCancel(context.Background())
	go func() {
		_, err := n.Eval(cctx, scripts.Release, []string{"k"}, "tok")
		done <- err
	}()
	if err := c.WaitPending(ctx, 1); err != nil {
		t.Fatal(err)
	}
	ccancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("delayed call with a cancelled context = %v", err)
	}
	if _, _, ok := n.Get("k"); !ok {
		t.Error("the cancelled call was applied")
	}
}

// Release and Extend only touch a key holding the caller's token.
func TestOwnerCheckedScripts(t *testing.T) {
	n, c := newNode()
	n.Set("k", "mine", time.Second)
	for _, s := range []*pool.Script{scripts.Release} {
		if flag(t, n, s, "k", "theirs") {
			t.Errorf("%s with a foreign token succeeded", s.Name)
		}
	}
	if flag(t, n, scripts.Extend, "k", "theirs", 60000) {
		t.Error("extend with a foreign token succeeded")
	}
	if val, ttl, ok := n.Get("k"); !ok || val != "mine" || ttl != time.Second {
		t.Fatalf("after foreign calls: %q, %v, %v", val, ttl, ok)
	}
	c.Advance(500 * time.Millisecond)
	if !flag(t, n, scripts.Extend, "k", "mine", 60000) {
		t.Error("extend by the owner failed")
	}
	if _, ttl, _ := n.Get("k"); ttl != time.Minute {
		t.Errorf("extend set the TTL to %v, want 1m from now", ttl)
	}
	if !flag(t, n, scripts.Release, "k", "mine") {
		t.Error("release by the owner failed")
	}
	for _, s := range []*pool.Script{scripts.Release} {
		if flag(t, n, s, "k", "mine") {
			t.Errorf("%s of an absent key succeeded", s.Name)
		}
	}
	if flag(t, n, scripts.Extend, "k", "mine", 1000) {
		t.Error("extend of an absent key succeeded")
	}
	// An expired key is absent.
	n.Set("e", "mine", 10*time.Millisecond)
	c.Advance(10 * time.Millisecond)
	if flag(t, n, scripts.Extend, "e", "mine", 1000) {
		t.Error("extend revived an expired key")
	}
}

// A key of another type is a WRONGTYPE error, matched by pool.ErrWrongType,
// and is never deleted.
func TestNonStringKey(t *testing.T) {
	n, _ := newNode()
	n.SetNonString("list")
	for _, tc := range []struct {
		s    *pool.Script
		args []any
	}{
		{scripts.Release, []any{"tok"}},
		{scripts.Extend, []any{"tok", 1000}},
	} {
		if _, err := n.Eval(context.Background(), tc.s, []string{"list"}, tc.args...); !errors.Is(err, pool.ErrWrongType) {
			t.Errorf("%s on a list = %v, want ErrWrongType", tc.s.Name, err)
		}
	}
	if _, _, ok := n.Get("list"); !ok {
		t.Error("the non-string key was deleted")
	}
}

func TestBadCalls(t *testing.T) {
	n, _ := newNode()
	for _, tc := range []struct {
		name string
		s    *pool.Script
		keys []string
		args []any
	}{
		{"unknown script", &pool.Script{Name: "nope"}, []string{"k"}, nil},
		{"no key", scripts.Release, nil, []any{"tok"}},
		{"zero ttl", scripts.Extend, []string{"k"}, []any{"tok", 0}},
		{"ttl not a number", scripts.Extend, []string{"k"}, []any{"tok", "soon"}},
	} {
		_, err := n.Eval(context.Background(), tc.s, tc.keys, tc.args...)
		var se *pool.ServerError
		if !errors.As(err, &se) {
			t.Errorf("%s: %v, want a *ServerError", tc.name, err)
		}
	}
}

// A Node is safe for concurrent use (run with -race).
func TestConcurrentUse(t *testing.T) {
	n, c := newNode()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				key := fmt.Sprintf("k%d", i%5)
				tok := fmt.Sprintf("g%d", g)
				n.Set(key, tok, time.Second)
				_, _ = n.Eval(context.Background(), scripts.Extend, []string{key}, tok, 1000)
				_, _ = n.Eval(context.Background(), scripts.Release, []string{key}, tok)
				_, _, _ = n.Get(key)
				n.Calls()
				c.Advance(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if recv, applied := n.Calls(); recv != 800 || applied != 800 {
		t.Errorf("Calls() = %d, %d; want 800, 800", recv, applied)
	}
}

// The in-memory node answers the lock scripts as a real Redis does: the same
// calls give the same decoded replies and the same kinds of errors.
func TestConformsToRedis(t *testing.T) {
	srv := redistest.Start(t, 1)[0]
	real := redistest.Pools(t, []*redistest.Server{srv})[0]
	mem, _ := newNode()
	conn, err := redis.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const marker = "\x00boot:conformance:"
	const tokA, tokB, tokC = "aaaaaaaa11111111aaaaaaaa11111111", "bbbbbbbb22222222bbbbbbbb22222222", "cccccccc33333333cccccccc33333333"
	type step struct {
		setup  func() // on both nodes
		script *pool.Script
		key    string
		args   []any
		keys   []string // all of them, when not key (and the boot marker)
	}
	acquire := func(key, tok string, ms int) step {
		return step{script: scripts.Acquire, key: key, args: []any{tok, ms}}
	}
	// The turn queue of lock "q" (scripts.ReleaseTurn).
	const queue = "\x00turn:q"
	queued := func(tok, waiter string) step {
		return step{script: scripts.Acquire, key: "q", keys: []string{"q", marker, queue}, args: []any{tok, 60000, waiter, 5000}}
	}
	releaseTurn := func(tok string) step {
		return step{script: scripts.ReleaseTurn, key: "q", keys: []string{"q", queue}, args: []any{tok, 60000}}
	}
	call := func(s *pool.Script, key string, args ...any) step { return step{script: s, key: key, args: args} }
	steps := []step{
		acquire("k", tokA, 60000),
		acquire("k", tokA, 60000), // a retry whose first reply was lost
		acquire("k", tokB, 60000),
		call(scripts.Extend, "k", tokB, 1000),
		call(scripts.Extend, "k", tokA, 120000),
		call(scripts.Release, "k", tokB),
		call(scripts.Release, "k", tokA),
		call(scripts.Release, "k", tokA),
		call(scripts.Extend, "k", tokA, 1000),
		acquire("k", tokB, 60000),
		call(scripts.Release, "k", tokB, "0"), // the gate announces it
		call(scripts.Release, "k", tokB),
		{setup: func() {
			mem.Set("forever", tokB, 0)
			if _, err := conn.Do("SET", "forever", tokB); err != nil {
				t.Fatal(err)
			}
		}, script: scripts.Acquire, key: "forever", args: []any{tokA, 1000}},
		{setup: func() {
			mem.SetNonString("list")
			if _, err := conn.Do("LPUSH", "list", "x"); err != nil {
				t.Fatal(err)
			}
		}, script: scripts.Acquire, key: "list", args: []any{tokA, 1000}},
		call(scripts.Release, "list", tokA),
		call(scripts.Extend, "list", tokA, 1000),
		queued(tokA, "w0"),
		queued(tokB, "w1"),
		queued(tokC, "w2"),
		queued(tokB, "w1"),
		releaseTurn(tokB),
		releaseTurn(tokA),
		queued(tokC, "w2"), // promised to w1
		queued(tokB, "w1"),
		call(scripts.Leave, queue, "w2"),
		call(scripts.Leave, queue, "w2"),
		releaseTurn(tokB),
		queued(tokC, "w3"),
	}
	describe := func(reply any, err error, s *pool.Script) string {
		switch {
		case err != nil:
			var se *pool.ServerError
			return fmt.Sprintf("error (ServerError %v, WRONGTYPE %v)", errors.As(err, &se), errors.Is(err, pool.ErrWrongType))
		case s == scripts.Acquire:
			ar, err := scripts.DecodeAcquire(reply)
			if err != nil {
				return "undecodable: " + err.Error()
			}
			// Times differ between a fake and a real clock; their sign
			// and rough size do not.
			ttl := "none"
			switch {
			case ar.HolderTTLms == -1:
				ttl = "no expiry"
			case ar.HolderTTLms > 0:
				ttl = fmt.Sprintf("~%ds", (ar.HolderTTLms+500)/1000)
			}
			return fmt.Sprintf("granted %v, holder %q, holder TTL %s, fence %d", ar.Granted, ar.Holder, ttl, ar.Fence)
		default:
			ok, err := scripts.DecodeFlag(reply)
			if err != nil {
				return "undecodable: " + err.Error()
			}
			return fmt.Sprint(ok)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, st := range steps {
		if st.setup != nil {
			st.setup()
		}
		keys := []string{st.key}
		if st.script == scripts.Acquire {
			keys = append(keys, marker)
		}
		if st.keys != nil {
			keys = st.keys
		}
		rr, rerr := real.Eval(ctx, st.script, keys, st.args...)
		mr, merr := mem.Eval(ctx, st.script, keys, st.args...)
		want, got := describe(rr, rerr, st.script), describe(mr, merr, st.script)
		if got != want {
			t.Errorf("step %d, %s(%s, %v): memnode %s, Redis %s", i, st.script.Name, st.key, st.args, got, want)
		}
	}
}
