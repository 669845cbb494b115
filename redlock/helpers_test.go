package redlock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/memnode"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// epoch is where every fake clock of these tests starts.
var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// hangBound is how long (real time) a test waits for something that must
// happen without the fake clock moving. It is a guard against a hang, not a
// speed requirement: a correct implementation answers in microseconds.
const hangBound = 10 * time.Second

// errDown is what a failed in-memory node answers.
var errDown = errors.New("node down")

// drift is the allowance of the default drift factor, as documented on
// WithDriftFactor: ttl*0.01 + 2ms.
func drift(ttl time.Duration) time.Duration {
	return time.Duration(float64(ttl)*redlock.DefaultDriftFactor) + 2*time.Millisecond
}

// lockKey is the Redis key of a lock name under the default prefix.
func lockKey(name string) string { return redlock.DefaultKeyPrefix + name }

// cluster is a set of in-memory nodes that expire keys by one fake clock.
type cluster struct {
	t     testing.TB
	clock *clock.Fake
	nodes []*memnode.Node
}

func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, clock: clock.NewFake(epoch)}
	for i := range n {
		c.nodes = append(c.nodes, memnode.New(fmt.Sprintf("10.0.0.%d:6379", i+1), c.clock))
	}
	return c
}

// pools returns the nodes as pools, in order.
func (c *cluster) pools() []pool.Pool {
	ps := make([]pool.Pool, len(c.nodes))
	for i, n := range c.nodes {
		ps[i] = n
	}
	return ps
}

// locker returns a Locker over the cluster's nodes on its fake clock.
func (c *cluster) locker(opts ...redlock.Option) *redlock.Locker {
	c.t.Helper()
	return newLocker(c.t, c.clock, c.pools(), opts...)
}

// newLocker builds a Locker on fc and closes it when the test ends, after
// healing every in-memory node and running the fake clock far ahead so that
// no straggler is left waiting.
func newLocker(t testing.TB, fc *clock.Fake, nodes []pool.Pool, opts ...redlock.Option) *redlock.Locker {
	t.Helper()
	lk, err := redlock.New(nodes, append([]redlock.Option{redlock.WithClock(fc)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		for _, p := range nodes {
			if n, ok := p.(interface{ Unhang() }); ok {
				n.Unhang()
			}
		}
		closeWithin(t, lk, fc)
	})
	return lk
}

// closeWithin closes lk, moving fc forward while it waits so that stragglers
// bounded by the fake clock finish, and fails t if Close never returns.
func closeWithin(t testing.TB, lk *redlock.Locker, fc *clock.Fake) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- lk.Close() }()
	deadline := time.After(hangBound)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Close: %v", err)
			}
			return
		case <-deadline:
			t.Errorf("Close did not return within %v", hangBound)
			return
		case <-time.After(time.Millisecond):
			fc.Advance(time.Hour)
		}
	}
}

// within runs f in its own goroutine and fails t if it has not returned after
// hangBound: for calls that must return without the fake clock moving.
func within[T any](t testing.TB, what string, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangBound):
		t.Fatalf("%s did not return within %v (with the fake clock standing still)", what, hangBound)
		panic("unreachable")
	}
}

// eventually polls cond until it holds, failing t after hangBound.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened within %v: %s", hangBound, what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// result is what Obtain returned.
type result struct {
	lock *redlock.Lock
	err  error
}

// start runs an obtain in its own goroutine.
func start(f func() (*redlock.Lock, error)) <-chan result {
	ch := make(chan result, 1)
	go func() {
		l, err := f()
		ch <- result{l, err}
	}()
	return ch
}

// driveUntil runs the fake clock like a discrete-event simulation: it jumps to
// each next timer deadline, never past limit, until ch delivers. It fails t
// when ch has not delivered after hangBound, which means the caller waits on a
// timer later than limit. It returns the result and the fake time at which it
// arrived.
//
// A jump does not wait for calls in flight, so a round's node timeout that
// falls before limit may fire while the nodes are still answering: callers
// give the Locker a node timeout beyond limit (WithNodeTimeout and a long
// TTL) unless that is what they test.
func driveUntil(t testing.TB, fc *clock.Fake, limit time.Time, ch <-chan result) (result, time.Time) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for {
		select {
		case r := <-ch:
			return r, fc.Now()
		default:
		}
		if time.Now().After(deadline) {
			next, ok := fc.NextDeadline()
			t.Fatalf("no result with the clock kept at or before %v (now %v; next timer %v, pending: %v)",
				limit.Sub(epoch), fc.Now().Sub(epoch), next.Sub(epoch), ok)
		}
		if next, ok := fc.NextDeadline(); ok && !next.After(limit) {
			fc.Set(next)
			continue
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// obtainEverywhere obtains name on lk and waits until every node of c holds
// the lock: the round is decided by a quorum, and a node that answers after
// the fake clock moved would otherwise hold the key longer than the others.
func obtainEverywhere(t testing.TB, c *cluster, lk *redlock.Locker, name string, ttl time.Duration) *redlock.Lock {
	t.Helper()
	l, err := lk.TryObtain(t.Context(), name, ttl)
	if err != nil {
		t.Fatalf("TryObtain(%q): %v", name, err)
	}
	eventually(t, "every node holds the key", func() bool {
		for _, n := range c.nodes {
			if val, _, ok := n.Get(lockKey(name)); !ok || val != l.Token() {
				return false
			}
		}
		return true
	})
	return l
}

// quorumError returns err as a *QuorumError, failing t if it is not one.
func quorumError(t testing.TB, err error) *redlock.QuorumError {
	t.Helper()
	var qe *redlock.QuorumError
	if !errors.As(err, &qe) {
		t.Fatalf("error %v (%T) is not a *QuorumError", err, err)
	}
	return qe
}

// probe wraps an in-memory node to count calls per script and to run hooks
// around them. Hooks must be set before the node is used.
type probe struct {
	*memnode.Node

	// before, if set, runs before the node; a non-nil error is the answer.
	before func(ctx context.Context, s *pool.Script) error
	// after, if set, runs once the node answered, before the answer is
	// returned to the coordinator.
	after func(s *pool.Script)

	mu     sync.Mutex
	counts map[string]int
}

func newProbe(n *memnode.Node) *probe { return &probe{Node: n, counts: map[string]int{}} }

func (p *probe) Eval(ctx context.Context, s *pool.Script, keys []string, args ...any) (any, error) {
	p.mu.Lock()
	p.counts[s.Name]++
	p.mu.Unlock()
	if p.before != nil {
		if err := p.before(ctx, s); err != nil {
			return nil, err
		}
	}
	reply, err := p.Node.Eval(ctx, s, keys, args...)
	if p.after != nil {
		p.after(s)
	}
	return reply, err
}

// count returns how many calls of the named script the node received.
func (p *probe) count(script string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[script]
}

// answerAt makes a probe move the fake clock to at once it has answered, as if
// the answer had taken until then. Several nodes may share one instant: the
// clock never moves backwards.
func answerAt(p *probe, fc *clock.Fake, at time.Time) {
	p.after = func(*pool.Script) { fc.Set(at) }
}

// endableCtx is a context the test ends with the error of its choice, such as
// context.DeadlineExceeded, without waiting for a wall-clock deadline.
type endableCtx struct {
	context.Context
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	err  error
}

func newEndableCtx() *endableCtx {
	return &endableCtx{Context: context.Background(), done: make(chan struct{})}
}

func (c *endableCtx) Done() <-chan struct{} { return c.done }

func (c *endableCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *endableCtx) end(err error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
	})
}

// knownBug skips a test that shows a reported, not yet fixed bug, unless
// QUORUMLOCK_SHOW_BUGS=1 asks to run it.
func knownBug(t testing.TB, desc string) {
	t.Helper()
	if os.Getenv("QUORUMLOCK_SHOW_BUGS") != "1" {
		t.Skip("BUG: " + desc + " (QUORUMLOCK_SHOW_BUGS=1 runs this test)")
	}
}

// signalBackoff returns a Backoff that waits d and reports each failure count
// on the returned channel: a test learns that an attempt of Obtain has
// completed, and that Obtain is about to wait.
func signalBackoff(d time.Duration) (redlock.Backoff, <-chan int) {
	ch := make(chan int, 1024)
	return redlock.BackoffFunc(func(failures int) (time.Duration, bool) {
		ch <- failures
		return d, true
	}), ch
}

// recv waits for a value on ch, failing t after hangBound.
func recv[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangBound):
		t.Fatalf("%s: nothing within %v", what, hangBound)
		panic("unreachable")
	}
}

// tryRound obtains name with one attempt and releases it, failing the test
// on any error.
func tryRound(t testing.TB, lk *redlock.Locker, name string) {
	t.Helper()
	l, err := lk.TryObtain(context.Background(), name, time.Minute)
	if err != nil {
		t.Fatalf("TryObtain(%s): %v", name, err)
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatalf("Release(%s): %v", name, err)
	}
}
