package redlock_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// adminBound is how long (real time) a test waits for something that must
// happen without the fake clock moving: a guard against a hang only.
const adminBound = 10 * time.Second

func adminCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), adminBound)
	t.Cleanup(cancel)
	return ctx
}

// adminLocker returns a Locker over real servers, closed when t ends.
func adminLocker(t *testing.T, servers []*redistest.Server, opts ...redlock.Option) *redlock.Locker {
	t.Helper()
	lk, err := redlock.New(redistest.Pools(t, servers), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lk.Close() })
	return lk
}

// redisDo runs one command on a server with a connection of its own.
func redisDo(t *testing.T, s *redistest.Server, cmd string, args ...any) any {
	t.Helper()
	c, err := redis.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Do(cmd, args...)
	if err != nil {
		t.Fatalf("%s on %s: %v", cmd, s.Addr, err)
	}
	return v
}

// adminAwaitCopies waits until n nodes hold the lock's holder token:
// Obtain and Release return once a quorum answered, and the other nodes'
// copies follow. The wait is bounded by adminBound.
func adminAwaitCopies(t *testing.T, lk *redlock.Locker, name string, n int) {
	t.Helper()
	ctx := adminCtx(t)
	for {
		in, err := lk.Inspect(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, got := in.Holder(); got == n {
			return
		}
	}
}

func TestInspectReportsEachNodesCopy(t *testing.T) {
	servers := redistest.Start(t, 3)
	lk := adminLocker(t, servers)
	ctx := adminCtx(t)

	in, err := lk.Inspect(ctx, "inspect-me")
	if err != nil {
		t.Fatal(err)
	}
	if in.Held() || !in.Settled() || in.Key != redlock.DefaultKeyPrefix+"inspect-me" || in.Quorum != 2 {
		t.Fatalf("free lock: Held %v Settled %v Key %q Quorum %d", in.Held(), in.Settled(), in.Key, in.Quorum)
	}
	for i, s := range in.Nodes {
		if s.Held || s.Err != nil || s.Addr != servers[i].Addr {
			t.Errorf("free lock, node %d: %+v", i, s)
		}
	}

	const ttl = 30 * time.Second
	l, err := lk.Obtain(ctx, "inspect-me", ttl)
	if err != nil {
		t.Fatal(err)
	}
	adminAwaitCopies(t, lk, "inspect-me", 3)
	// A copy held by another token on one node: the holder is still the
	// quorum's token.
	redisDo(t, servers[2], "SET", in.Key, "someone-else", "PX", 60000)
	in, err = lk.Inspect(ctx, "inspect-me")
	if err != nil {
		t.Fatal(err)
	}
	if tok, n := in.Holder(); tok != l.Token() || n < 2 || !in.Held() || !in.Settled() {
		t.Fatalf("held lock: Holder %q on %d, Held %v, Settled %v; token %q", tok, n, in.Held(), in.Settled(), l.Token())
	}
	for i, s := range in.Nodes[:2] {
		if !s.Held || s.Token != l.Token() || s.TTL <= 0 || s.TTL > ttl || s.Err != nil {
			t.Errorf("held lock, node %d: %+v", i, s)
		}
	}
	if s := in.Nodes[2]; !s.Held || s.Token != "someone-else" {
		t.Errorf("node 2: %+v, want the other token", s)
	}
	if d, ok := in.HolderTTL(); !ok || d <= 0 || d > ttl {
		t.Errorf("HolderTTL = %v, %v; want within (0, %v]", d, ok, ttl)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestInspectReportsAKeyOfAnotherType(t *testing.T) {
	servers := redistest.Start(t, 3)
	lk := adminLocker(t, servers)
	ctx := adminCtx(t)
	redisDo(t, servers[1], "RPUSH", redlock.DefaultKeyPrefix+"list", "x")

	in, err := lk.Inspect(ctx, "list")
	if err != nil {
		t.Fatal(err)
	}
	if s := in.Nodes[1]; s.Held || !errors.Is(s.Err, redlock.ErrWrongType) {
		t.Fatalf("node 1: %+v, want an error matching ErrWrongType", s)
	}
	if in.Held() || !in.Settled() {
		t.Errorf("Held %v Settled %v, want false, true (2 free nodes answered, quorum 2)", in.Held(), in.Settled())
	}
	// Reset deletes it: it is the lock's key, whatever it holds.
	rep, err := lk.Reset(ctx, "list")
	if err != nil {
		t.Fatal(err)
	}
	if got := []int64{rep.Nodes[0].Deleted, rep.Nodes[1].Deleted, rep.Nodes[2].Deleted}; got[0] != 0 || got[1] != 1 || got[2] != 0 {
		t.Errorf("deleted per node %v, want [0 1 0]", got)
	}
}

func TestResetDeletesAHeldLockOnEveryNode(t *testing.T) {
	servers := redistest.Start(t, 3)
	lk := adminLocker(t, servers)
	ctx := adminCtx(t)
	l, err := lk.Obtain(ctx, "stuck", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	adminAwaitCopies(t, lk, "stuck", 3)
	rep, err := lk.Reset(ctx, "stuck")
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range rep.Nodes {
		if s.Deleted != 1 || s.Err != nil || s.Addr != servers[i].Addr {
			t.Errorf("node %d: %+v, want 1 deleted", i, s)
		}
	}
	if rep.Deleted() != 3 {
		t.Errorf("Deleted() = %d, want 3", rep.Deleted())
	}
	// Mutual exclusion is broken, as documented: another owner gets the
	// lock, and the first learns it has lost it only when it asks.
	l2, err := lk.TryObtain(ctx, "stuck", time.Minute)
	if err != nil {
		t.Fatalf("TryObtain after Reset: %v", err)
	}
	if err := l.Release(ctx); !errors.Is(err, redlock.ErrNotHeld) {
		t.Errorf("first holder's Release = %v, want ErrNotHeld", err)
	}
	if err := l2.Release(ctx); err != nil {
		t.Errorf("second holder's Release: %v", err)
	}
	// Release returns once a quorum answered; wait for the last node's
	// delete, after which a reset has nothing to delete.
	adminAwaitCopies(t, lk, "stuck", 0)
	rep, err = lk.Reset(ctx, "stuck")
	if err != nil || rep.Deleted() != 0 {
		t.Errorf("second Reset: %d deleted, %v; want 0, nil", rep.Deleted(), err)
	}
}

func TestResetAllDeletesOnlyThePrefixInBatches(t *testing.T) {
	servers := redistest.Start(t, 3)
	// Glob characters in the prefix must match only themselves.
	const prefix = "adm[1]*?:"
	lk := adminLocker(t, servers, redlock.WithKeyPrefix(prefix))
	ctx := adminCtx(t)
	// More keys than one SCAN step returns, on every node.
	const perNode = 1234
	decoys := []string{"adm1x:k", "adm[1]*?", "other:" + prefix, "adm[1]*?"[:4] + ":k"}
	for _, s := range servers {
		c, err := redis.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		for i := range perNode {
			_ = c.Send("SET", fmt.Sprintf("%sname-%d", prefix, i), "token", "PX", 60000)
		}
		for _, d := range decoys {
			_ = c.Send("SET", d, "keep")
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		for range perNode + len(decoys) {
			if _, err := c.Receive(); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
	}

	rep, err := lk.ResetAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range rep.Nodes {
		if s.Deleted != perNode || s.Err != nil {
			t.Errorf("node %d: %+v, want %d deleted", i, s, perNode)
		}
	}
	for _, s := range servers {
		if n, _ := redis.Int(redisDo(t, s, "DBSIZE"), nil); n != len(decoys) {
			t.Errorf("node %s has %d keys after ResetAll, want the %d decoys", s.Addr, n, len(decoys))
		}
		for _, d := range decoys {
			if n, _ := redis.Int(redisDo(t, s, "EXISTS", d), nil); n != 1 {
				t.Errorf("node %s: decoy %q was deleted", s.Addr, d)
			}
		}
	}
}

func TestAdminWithANodeDown(t *testing.T) {
	servers := redistest.Start(t, 3)
	lk := adminLocker(t, servers)
	ctx := adminCtx(t)
	l, err := lk.Obtain(ctx, "partial", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	adminAwaitCopies(t, lk, "partial", 3)
	defer l.Release(ctx)
	if err := servers[2].Kill(); err != nil {
		t.Fatal(err)
	}

	in, err := lk.Inspect(ctx, "partial")
	if err != nil {
		t.Fatal(err)
	}
	if in.Nodes[2].Err == nil {
		t.Errorf("dead node: %+v, want an error", in.Nodes[2])
	}
	if !in.Held() || !in.Settled() {
		t.Errorf("Held %v Settled %v, want true, true (2 of 3 hold it, quorum 2)", in.Held(), in.Settled())
	}

	rep, err := lk.Reset(ctx, "partial")
	if err == nil || !strings.Contains(err.Error(), servers[2].Addr) || !strings.Contains(err.Error(), "1 of 3 nodes failed") {
		t.Errorf("Reset error = %v, want one naming the dead node %s", err, servers[2].Addr)
	}
	if rep.Nodes[0].Deleted+rep.Nodes[1].Deleted != 2 || rep.Nodes[2].Err == nil {
		t.Errorf("report %+v, want the 2 live copies deleted and the dead node's error", rep.Nodes)
	}
	// Only the dead node may still hold a copy, which is not a quorum.
	in, err = lk.Inspect(ctx, "partial")
	if err != nil {
		t.Fatal(err)
	}
	if in.Held() || !in.Settled() {
		t.Errorf("after reset: Held %v Settled %v, want false, true", in.Held(), in.Settled())
	}
}

// adminPool is a node for the fault tests: it answers the Inspect script
// with a free lock at once, or, when hung, blocks until its call's context
// ends. Entered is closed when it has been called.
type adminPool struct {
	addr    string
	hung    bool
	once    sync.Once
	entered chan struct{}
}

func newAdminPool(addr string, hung bool) *adminPool {
	return &adminPool{addr: addr, hung: hung, entered: make(chan struct{})}
}

func (p *adminPool) Addr() string { return p.addr }

func (p *adminPool) Eval(ctx context.Context, s *pool.Script, keys []string, args ...any) (any, error) {
	p.once.Do(func() { close(p.entered) })
	if p.hung {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return []any{int64(0)}, nil
}

func TestInspectBoundsAHungNode(t *testing.T) {
	tests := []struct {
		name        string
		nodeTimeout time.Duration // 0: only ctx bounds the call
	}{
		{"by the node timeout", time.Second},
		{"by the context", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			nodes := []*adminPool{newAdminPool("a:1", false), newAdminPool("b:1", false), newAdminPool("c:1", true)}
			opts := []redlock.Option{redlock.WithClock(fc)}
			if tt.nodeTimeout > 0 {
				opts = append(opts, redlock.WithNodeTimeout(tt.nodeTimeout))
			}
			lk, err := redlock.New([]pool.Pool{nodes[0], nodes[1], nodes[2]}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer lk.Close()
			ctx, cancel := context.WithCancel(adminCtx(t))
			defer cancel()

			type result struct {
				in  redlock.Inspection
				err error
			}
			done := make(chan result, 1)
			go func() {
				in, err := lk.Inspect(ctx, "x")
				done <- result{in, err}
			}()
			for _, n := range nodes {
				select {
				case <-n.entered:
				case <-time.After(adminBound):
					t.Fatal("Inspect did not call every node")
				}
			}
			select {
			case r := <-done:
				t.Fatalf("Inspect returned while a node hangs: %+v", r)
			default:
			}
			if tt.nodeTimeout > 0 {
				fc.Advance(tt.nodeTimeout)
			} else {
				cancel()
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(adminBound):
				t.Fatal("Inspect did not return once the hung call was bounded")
			}
			hung := r.in.Nodes[2]
			want := context.Canceled // the caller gave up
			if tt.nodeTimeout > 0 {
				want = context.DeadlineExceeded // the node was too slow
			}
			if !errors.Is(hung.Err, want) {
				t.Errorf("hung node: %+v, want an error matching %v", hung, want)
			}
			if tt.nodeTimeout > 0 && (r.err != nil || !strings.Contains(hung.Err.Error(), "node timeout")) {
				t.Errorf("node timeout: Inspect error %v, node error %v; want nil and a timeout", r.err, hung.Err)
			}
			if tt.nodeTimeout == 0 && !errors.Is(r.err, context.Canceled) {
				t.Errorf("ctx cancelled: Inspect error %v, want context.Canceled", r.err)
			}
			for i, s := range r.in.Nodes[:2] {
				if s.Err != nil || s.Held {
					t.Errorf("node %d: %+v, want free", i, s)
				}
			}
			if r.in.Held() || r.in.Settled() != true {
				t.Errorf("Held %v Settled %v; want false, true (2 free of 3, quorum 2)", r.in.Held(), r.in.Settled())
			}
		})
	}
}

func TestAdminRejectsBadInputAndClosedLocker(t *testing.T) {
	fc := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	lk, err := redlock.New([]pool.Pool{newAdminPool("a:1", false)}, redlock.WithClock(fc))
	if err != nil {
		t.Fatal(err)
	}
	ctx := adminCtx(t)
	if _, err := lk.Inspect(ctx, ""); !errors.Is(err, redlock.ErrInvalid) {
		t.Errorf("Inspect(\"\") = %v, want ErrInvalid", err)
	}
	if _, err := lk.Reset(ctx, ""); !errors.Is(err, redlock.ErrInvalid) {
		t.Errorf("Reset(\"\") = %v, want ErrInvalid", err)
	}
	if err := lk.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := lk.Inspect(ctx, "x"); !errors.Is(err, redlock.ErrClosed) {
		t.Errorf("Inspect after Close = %v, want ErrClosed", err)
	}
	if _, err := lk.Reset(ctx, "x"); !errors.Is(err, redlock.ErrClosed) {
		t.Errorf("Reset after Close = %v, want ErrClosed", err)
	}
	if _, err := lk.ResetAll(ctx); !errors.Is(err, redlock.ErrClosed) {
		t.Errorf("ResetAll after Close = %v, want ErrClosed", err)
	}
}

func TestInspectionVerdicts(t *testing.T) {
	held := func(tok string, ttl time.Duration) redlock.NodeState {
		return redlock.NodeState{Held: true, Token: tok, TTL: ttl}
	}
	free := redlock.NodeState{}
	down := redlock.NodeState{Err: errors.New("down")}
	tests := []struct {
		name     string
		nodes    []redlock.NodeState
		holder   string
		count    int
		held     bool
		settled  bool
		holdTTL  time.Duration
		holdTTLk bool
	}{
		{"all free", []redlock.NodeState{free, free, free, free, free}, "", 0, false, true, 0, false},
		{"held on a quorum", []redlock.NodeState{held("a", 5*time.Second), held("a", 3*time.Second), held("a", 4*time.Second), free, down}, "a", 3, true, true, 3 * time.Second, true},
		{"held on all: quorum-th longest", []redlock.NodeState{held("a", 1*time.Second), held("a", 2*time.Second), held("a", 3*time.Second), held("a", 4*time.Second), held("a", 5*time.Second)}, "a", 5, true, true, 3 * time.Second, true},
		{"split", []redlock.NodeState{held("a", time.Second), held("a", time.Second), held("b", time.Second), held("b", time.Second), free}, "a", 2, false, true, 0, false},
		{"unknown: failed nodes could make a quorum", []redlock.NodeState{held("a", time.Second), held("a", time.Second), down, free, free}, "a", 2, false, false, 0, false},
		{"unknown: too few answered", []redlock.NodeState{free, free, down, down, down}, "", 0, false, false, 0, false},
		{"settled free with a node down", []redlock.NodeState{held("a", time.Second), free, free, free, down}, "a", 1, false, true, 0, false},
		{"no expiry", []redlock.NodeState{held("a", -1), held("a", -1), held("a", -1), free, free}, "a", 3, true, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := redlock.Inspection{Quorum: 3, Nodes: tt.nodes}
			tok, n := in.Holder()
			if tok != tt.holder || n != tt.count {
				t.Errorf("Holder() = %q, %d; want %q, %d", tok, n, tt.holder, tt.count)
			}
			if in.Held() != tt.held || in.Settled() != tt.settled {
				t.Errorf("Held %v Settled %v; want %v %v", in.Held(), in.Settled(), tt.held, tt.settled)
			}
			if d, ok := in.HolderTTL(); d != tt.holdTTL || ok != tt.holdTTLk {
				t.Errorf("HolderTTL() = %v, %v; want %v, %v", d, ok, tt.holdTTL, tt.holdTTLk)
			}
		})
	}
}
