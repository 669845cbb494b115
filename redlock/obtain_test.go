package redlock_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// A round whose quorum answers after d leaves ttl - d - drift of validity,
// counted from the start of the round. Two nodes answer after a delay on the
// fake clock, the third never answers (the round is decided without it).
func TestObtainValidityShrinksWithTheRound(t *testing.T) {
	const ttl = time.Second
	budget := ttl - drift(ttl) // 988ms
	for _, d := range []time.Duration{0, time.Millisecond, 500 * time.Millisecond, budget - time.Millisecond, budget - 1} {
		t.Run(d.String(), func(t *testing.T) {
			c := newCluster(t, 3)
			// The default node timeout (50ms for 1s) would cut the slow
			// nodes off; the validity math is what is under test here.
			lk := c.locker(redlock.WithNodeTimeout(time.Hour))
			c.nodes[0].SetDelay(d)
			c.nodes[1].SetDelay(d)
			c.nodes[2].Hang()
			ch := start(func() (*redlock.Lock, error) { return lk.TryObtain(t.Context(), "v", ttl) })
			if d > 0 {
				// The round's timeout timer and the two nodes' delays.
				ctx, cancel := context.WithTimeout(t.Context(), hangBound)
				defer cancel()
				if err := c.clock.WaitPending(ctx, 3); err != nil {
					t.Fatalf("the nodes never started waiting: %v", err)
				}
				c.clock.Advance(d)
			}
			r := recv(t, "TryObtain", ch)
			if r.err != nil {
				t.Fatalf("TryObtain after %v: %v", d, r.err)
			}
			if got, want := r.lock.ValidUntil(), epoch.Add(ttl-drift(ttl)); !got.Equal(want) {
				t.Errorf("ValidUntil = epoch+%v, want epoch+%v (start + ttl - drift)", got.Sub(epoch), want.Sub(epoch))
			}
			if got, want := r.lock.TTL(), ttl-d-drift(ttl); got != want {
				t.Errorf("TTL() = %v, want ttl - elapsed - drift = %v", got, want)
			}
			for _, n := range c.nodes[:2] {
				val, pttl, ok := n.Get(lockKey("v"))
				if !ok || val != r.lock.Token() {
					t.Errorf("%s: key %q = %q, %v; want the lock's token", n.Addr(), lockKey("v"), val, ok)
				}
				// The nodes were given the whole TTL, relative to when they
				// ran the script.
				if pttl != ttl {
					t.Errorf("%s: key TTL %v, want %v", n.Addr(), pttl, ttl)
				}
			}
		})
	}
}

// The boundary of the validity: a quorum that answers exactly when ttl -
// drift has elapsed leaves no validity, and the attempt fails with ErrExpired.
func TestObtainValidityBoundary(t *testing.T) {
	for _, tc := range []struct {
		ttl     time.Duration
		factor  float64
		elapsed time.Duration
		valid   time.Duration // 0: ErrExpired
	}{
		{time.Second, 0.01, 0, 988 * time.Millisecond},
		{time.Second, 0.01, 987 * time.Millisecond, time.Millisecond},
		{time.Second, 0.01, 988*time.Millisecond - 1, 1},
		{time.Second, 0.01, 988 * time.Millisecond, 0},
		{time.Second, 0.01, 988*time.Millisecond + 1, 0},
		{time.Second, 0.01, 5 * time.Second, 0},
		{time.Second, 0, 998*time.Millisecond - 1, 1},
		{time.Second, 0, 998 * time.Millisecond, 0},
		{time.Second, 0.25, 748*time.Millisecond - 1, 1},
		{time.Second, 0.25, 748 * time.Millisecond, 0},
		// The TTL is truncated to whole milliseconds (the resolution of PX)
		// before the validity is computed.
		{time.Second + 999*time.Microsecond, 0.01, 988*time.Millisecond - 1, 1},
		{time.Second + 999*time.Microsecond, 0.01, 988 * time.Millisecond, 0},
		{10 * time.Second, 0.01, 9898*time.Millisecond - 1, 1},
		{10 * time.Second, 0.01, 9898 * time.Millisecond, 0},
	} {
		t.Run(fmt.Sprintf("ttl=%v/drift=%v/elapsed=%v", tc.ttl, tc.factor, tc.elapsed), func(t *testing.T) {
			c := newCluster(t, 1)
			p := newProbe(c.nodes[0])
			answerAt(p, c.clock, epoch.Add(tc.elapsed))
			lk := newLocker(t, c.clock, []pool.Pool{p}, redlock.WithDriftFactor(tc.factor))
			l, err := within(t, "TryObtain", func() result {
				l, err := lk.TryObtain(t.Context(), "b", tc.ttl)
				return result{l, err}
			}).unpack()
			if tc.valid > 0 {
				if err != nil {
					t.Fatalf("TryObtain: %v, want a lock valid for %v", err, tc.valid)
				}
				if got := l.TTL(); got != tc.valid {
					t.Errorf("TTL() = %v, want %v", got, tc.valid)
				}
				return
			}
			if !errors.Is(err, redlock.ErrExpired) {
				t.Fatalf("TryObtain = %v, %v; want ErrExpired", l, err)
			}
			if qe := quorumError(t, err); qe.Op != "obtain" || qe.Err != redlock.ErrExpired || qe.Quorum != 1 {
				t.Errorf("QuorumError = %+v", qe)
			}
			for _, other := range []error{redlock.ErrHeld, redlock.ErrNoQuorum, redlock.ErrNotHeld} {
				if errors.Is(err, other) {
					t.Errorf("ErrExpired also matches %v", other)
				}
			}
			// The late grant is cleaned up: the key does not outlive the
			// failed attempt.
			eventually(t, "the expired attempt's key is deleted", func() bool {
				_, _, ok := c.nodes[0].Get(lockKey("b"))
				return !ok
			})
		})
	}
}

func (r result) unpack() (*redlock.Lock, error) { return r.lock, r.err }

// With k of N nodes failing, an attempt succeeds if and only if N-k >= N/2+1.
func TestObtainQuorum(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 7} {
		for k := 0; k <= n; k++ {
			t.Run(fmt.Sprintf("N=%d/failing=%d", n, k), func(t *testing.T) {
				c := newCluster(t, n)
				lk := c.locker()
				for _, node := range c.nodes[:k] {
					node.Fail(errDown)
				}
				if got, want := lk.Quorum(), n/2+1; got != want {
					t.Fatalf("Quorum() = %d, want %d", got, want)
				}
				l, err := within(t, "TryObtain", func() result {
					l, err := lk.TryObtain(t.Context(), "q", time.Second)
					return result{l, err}
				}).unpack()
				if n-k >= n/2+1 {
					if err != nil {
						t.Fatalf("TryObtain with %d of %d nodes up: %v", n-k, n, err)
					}
					granted := 0
					for _, node := range c.nodes {
						if val, _, ok := node.Get(lockKey("q")); ok && val == l.Token() {
							granted++
						}
					}
					if granted < lk.Quorum() {
						t.Errorf("the lock's token is on %d nodes, fewer than the quorum %d", granted, lk.Quorum())
					}
					return
				}
				if !errors.Is(err, redlock.ErrNoQuorum) || errors.Is(err, redlock.ErrHeld) {
					t.Fatalf("TryObtain with %d of %d nodes up = %v; want ErrNoQuorum only", n-k, n, err)
				}
				qe := quorumError(t, err)
				if qe.Quorum != n/2+1 || len(qe.Votes) != n {
					t.Errorf("QuorumError: quorum %d, %d votes; want %d, %d", qe.Quorum, len(qe.Votes), n/2+1, n)
				}
				for i, v := range qe.Votes {
					if v.Addr != c.nodes[i].Addr() {
						t.Errorf("vote %d is of %s, want %s (votes in node order)", i, v.Addr, c.nodes[i].Addr())
					}
					if i < k && v.Answered && !errors.Is(v.Err, errDown) {
						t.Errorf("vote of failed node %s: %+v", v.Addr, v)
					}
				}
				eventually(t, "no key left by the failed attempt", func() bool {
					for _, node := range c.nodes {
						if _, _, ok := node.Get(lockKey("q")); ok {
							return false
						}
					}
					return true
				})
			})
		}
	}
}

// A failed round says why: ErrNoQuorum when errors alone made the quorum
// impossible, ErrHeld when the other owner's refusals are what was missing.
func TestObtainVerdict(t *testing.T) {
	for _, tc := range []verdictCase{
		{n: 1, held: 1, want: redlock.ErrHeld},
		{n: 1, failed: 1, want: redlock.ErrNoQuorum},
		{n: 2, failed: 1, want: redlock.ErrNoQuorum},
		{n: 3, held: 3, want: redlock.ErrHeld},
		{n: 3, held: 2, want: redlock.ErrHeld},
		{n: 3, held: 1, failed: 2, want: redlock.ErrNoQuorum},
		{n: 3, failed: 2, want: redlock.ErrNoQuorum},
		{n: 3, failed: 3, want: redlock.ErrNoQuorum},
		{n: 5, held: 5, want: redlock.ErrHeld},
		{n: 5, held: 3, want: redlock.ErrHeld},
		{n: 5, held: 2, failed: 3, want: redlock.ErrNoQuorum},
		{n: 5, failed: 3, want: redlock.ErrNoQuorum},

		{n: 7, held: 4, want: redlock.ErrHeld},
	} {
		t.Run(tc.String(), tc.run)
	}
}

// With an even number of nodes, or with a failed node next to refusals, the
// round is decided before every node answered, and the nodes not waited for
// are counted as errors: a lock held on every node is reported as
// ErrNoQuorum.
func TestObtainVerdictWithUnansweredNodes(t *testing.T) {
	for _, tc := range []verdictCase{
		{n: 2, held: 2, want: redlock.ErrHeld},
		{n: 4, held: 4, want: redlock.ErrHeld},
		{n: 6, held: 6, want: redlock.ErrHeld},
	} {
		t.Run(tc.String(), tc.run)
	}
}

type verdictCase struct {
	n, held, failed int
	want            error
}

func (tc verdictCase) String() string {
	return fmt.Sprintf("N=%d/held=%d/failed=%d", tc.n, tc.held, tc.failed)
}

func (tc verdictCase) run(t *testing.T) {
	c := newCluster(t, tc.n)
	lk := c.locker()
	for _, node := range c.nodes[:tc.held] {
		node.Set(lockKey("x"), "someone-else", time.Minute)
	}
	for _, node := range c.nodes[tc.held : tc.held+tc.failed] {
		node.Fail(errDown)
	}
	_, err := within(t, "TryObtain", func() result {
		l, err := lk.TryObtain(t.Context(), "x", time.Second)
		return result{l, err}
	}).unpack()
	if !errors.Is(err, tc.want) {
		t.Fatalf("TryObtain = %v, want %v", err, tc.want)
	}
	for _, other := range []error{redlock.ErrHeld, redlock.ErrNoQuorum, redlock.ErrExpired, redlock.ErrNotHeld} {
		if other != tc.want && errors.Is(err, other) {
			t.Errorf("error also matches %v: %v", other, err)
		}
	}
}

// The verdict must not depend on the order in which the nodes answer. Three
// nodes: one held by another owner, one failing, one free. Whether the free
// node answers before the round is decided or not, the verdict is
// ErrNoQuorum: one refusal of three cannot block a quorum by itself, the
// failing node did.
func TestObtainVerdictIndependentOfAnswerOrder(t *testing.T) {
	for _, freeFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("freeAnswersFirst=%v", freeFirst), func(t *testing.T) {
			c := newCluster(t, 3)
			c.nodes[0].Set(lockKey("o"), "someone-else", time.Minute)
			failing, free := newProbe(c.nodes[1]), newProbe(c.nodes[2])
			if freeFirst {
				answered := make(chan struct{})
				free.after = func(s *pool.Script) {
					if s == scripts.Acquire {
						close(answered)
					}
				}
				failing.before = func(ctx context.Context, _ *pool.Script) error {
					select {
					case <-answered:
					case <-ctx.Done():
					}
					return errDown
				}
			} else {
				failing.before = func(context.Context, *pool.Script) error { return errDown }
				c.nodes[2].Hang()
			}
			lk := newLocker(t, c.clock, []pool.Pool{c.nodes[0], failing, free})
			_, err := within(t, "TryObtain", func() result {
				l, err := lk.TryObtain(t.Context(), "o", time.Second)
				return result{l, err}
			}).unpack()
			if !errors.Is(err, redlock.ErrNoQuorum) || errors.Is(err, redlock.ErrHeld) {
				t.Fatalf("TryObtain = %v; want ErrNoQuorum (one refusal of three cannot block a quorum by itself)", err)
			}
		})
	}
}

// The call returns as soon as the outcome is certain, without waiting for a
// node that never answers: the fake clock never moves, so no timeout can end
// the hung call.
func TestObtainDecidesWithoutHungNodes(t *testing.T) {
	for _, tc := range []struct {
		name                string
		n, held, fail, hung int
		want                error // nil: obtained
	}{
		{name: "quorum granted", n: 3, hung: 1},
		{name: "quorum granted/5", n: 5, hung: 2},
		{name: "held by another", n: 3, held: 2, hung: 1, want: redlock.ErrHeld},
		{name: "quorum impossible", n: 5, fail: 3, hung: 2, want: redlock.ErrNoQuorum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, tc.n)
			lk := c.locker()
			for i, node := range c.nodes {
				switch {
				case i < tc.held:
					node.Set(lockKey("h"), "someone-else", time.Minute)
				case i < tc.held+tc.fail:
					node.Fail(errDown)
				case i >= tc.n-tc.hung:
					node.Hang()
				}
			}
			l, err := within(t, "TryObtain with hung nodes", func() result {
				l, err := lk.TryObtain(t.Context(), "h", time.Second)
				return result{l, err}
			}).unpack()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("TryObtain: %v", err)
				}
				if l.TTL() <= 0 {
					t.Errorf("TTL() = %v", l.TTL())
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("TryObtain = %v, want %v", err, tc.want)
			}
			for i, v := range quorumError(t, err).Votes {
				if i >= tc.n-tc.hung && v.Answered {
					t.Errorf("hung node %s counted as answered: %+v", v.Addr, v)
				}
			}
			if s := err.Error(); !regexp.MustCompile(`no answer`).MatchString(s) {
				t.Errorf("error does not say which nodes did not answer: %s", s)
			}
		})
	}
}

// When the outcome is not yet certain the round does wait: with two nodes
// (quorum 2) and one hung, only the node timeout decides.
func TestObtainWaitsForUndecidedRound(t *testing.T) {
	c := newCluster(t, 2)
	lk := c.locker(redlock.WithNodeTimeout(100 * time.Millisecond))
	c.nodes[1].Hang()
	ch := start(func() (*redlock.Lock, error) { return lk.TryObtain(t.Context(), "u", time.Second) })
	eventually(t, "the healthy node grants", func() bool {
		_, _, ok := c.nodes[0].Get(lockKey("u"))
		return ok
	})
	r, at := driveUntil(t, c.clock, epoch.Add(100*time.Millisecond), ch)
	if at.Sub(epoch) != 100*time.Millisecond {
		t.Errorf("the round was decided at %v, want at the node timeout (100ms)", at.Sub(epoch))
	}
	if !errors.Is(r.err, redlock.ErrNoQuorum) {
		t.Fatalf("TryObtain = %v, want ErrNoQuorum", r.err)
	}
	v := quorumError(t, r.err).Votes[1]
	if !v.Answered || v.Err == nil || !regexp.MustCompile(`timeout`).MatchString(v.Err.Error()) {
		t.Errorf("vote of the hung node = %+v, want a timeout error", v)
	}
	eventually(t, "the granted node is released", func() bool {
		_, _, ok := c.nodes[0].Get(lockKey("u"))
		return !ok
	})
}

// A failed attempt leaves no key of its own on any node: the nodes that
// answered are released at once, a straggler as soon as it answers.
func TestFailedAttemptReleasesEveryNode(t *testing.T) {
	c := newCluster(t, 5)
	lk := c.locker()
	for _, n := range c.nodes[:2] {
		n.Set(lockKey("p"), "someone-else", time.Minute)
	}
	// nodes[2] grants; nodes[3] hangs and will grant late; nodes[4] fails.
	c.nodes[3].Hang()
	c.nodes[4].Fail(errDown)
	_, err := within(t, "TryObtain", func() result {
		l, err := lk.TryObtain(t.Context(), "p", time.Minute)
		return result{l, err}
	}).unpack()
	if !errors.Is(err, redlock.ErrHeld) && !errors.Is(err, redlock.ErrNoQuorum) {
		t.Fatalf("TryObtain = %v, want a failure", err)
	}
	eventually(t, "the granting node is released", func() bool {
		_, _, ok := c.nodes[2].Get(lockKey("p"))
		return !ok
	})
	c.nodes[3].Unhang()
	eventually(t, "the straggler granted, then was released", func() bool {
		recv, applied := c.nodes[3].Calls()
		_, _, ok := c.nodes[3].Get(lockKey("p"))
		return recv >= 2 && applied >= 2 && !ok
	})
	for _, n := range c.nodes[:2] {
		if val, _, ok := n.Get(lockKey("p")); !ok || val != "someone-else" {
			t.Errorf("%s: the other owner's key became %q, %v", n.Addr(), val, ok)
		}
	}
}

// An attempt cut short by its context still releases what it was granted,
// and reports the context's error.
func TestObtainCancelledMidRoundReleases(t *testing.T) {
	c := newCluster(t, 3)
	c.nodes[1].Hang()
	c.nodes[2].Hang()
	granted := make(chan struct{})
	p := newProbe(c.nodes[0])
	p.after = func(s *pool.Script) {
		if s.Name == "acquire" {
			close(granted)
		}
	}
	lk := newLocker(t, c.clock, []pool.Pool{p, c.nodes[1], c.nodes[2]})
	ctx, cancel := context.WithCancel(t.Context())
	ch := start(func() (*redlock.Lock, error) { return lk.Obtain(ctx, "m", time.Minute) })
	recv(t, "grant of the first node", granted)
	cancel()
	r := recv(t, "Obtain", ch)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Obtain = %v, want context.Canceled", r.err)
	}
	eventually(t, "the granting node is released after the cancellation", func() bool {
		_, _, ok := c.nodes[0].Get(lockKey("m"))
		return !ok
	})
}

// Obtain retries until the holder's key has expired on a quorum.
func TestObtainRetriesUntilFree(t *testing.T) {
	c := newCluster(t, 3)
	obtainEverywhere(t, c, c.locker(), "r", 25*time.Millisecond)
	lk := c.locker(redlock.WithBackoff(redlock.ConstantBackoff(10*time.Millisecond)), redlock.WithNodeTimeout(time.Hour))
	ch := start(func() (*redlock.Lock, error) { return lk.Obtain(t.Context(), "r", time.Minute) })
	r, at := driveUntil(t, c.clock, epoch.Add(26*time.Millisecond), ch)
	if r.err != nil {
		t.Fatalf("Obtain: %v", r.err)
	}
	if at.Before(epoch.Add(25 * time.Millisecond)) {
		t.Errorf("obtained at %v, before the holder's key expired at 25ms", at.Sub(epoch))
	}
}

// Obtain never waits longer than the holder has left: the nodes report the
// holder's remaining TTL, and the wait after a failure is shortened to the
// moment a quorum of nodes will be free (+1ms), whatever the Backoff says.
// The round that reports it may be decided before every node answered, so
// when the TTLs differ between nodes the bound is the longest of them.
func TestObtainWaitsNoLongerThanHolderTTL(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ttls   []time.Duration // holder's TTL per node; 0: node free
		free   time.Duration   // when a quorum is free
		latest time.Duration   // the longest TTL of a refusing node
	}{
		{"one node", []time.Duration{30 * time.Millisecond}, 30 * time.Millisecond, 30 * time.Millisecond},
		{"same everywhere", []time.Duration{30 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond}, 30 * time.Millisecond, 30 * time.Millisecond},
		{"set a little apart", []time.Duration{30 * time.Millisecond, 29 * time.Millisecond, 31 * time.Millisecond, 30 * time.Millisecond, 28 * time.Millisecond}, 30 * time.Millisecond, 31 * time.Millisecond},
		{"some nodes free", []time.Duration{0, 40 * time.Millisecond, 0, 40 * time.Millisecond, 40 * time.Millisecond}, 40 * time.Millisecond, 40 * time.Millisecond},
		{"minute-long backoff, second-long holder", []time.Duration{time.Second, time.Second, time.Second}, time.Second, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, len(tc.ttls))
			for i, ttl := range tc.ttls {
				if ttl > 0 {
					c.nodes[i].Set(lockKey("w"), "someone-else", ttl)
				}
			}
			backoff, failures := signalBackoff(time.Hour)
			lk := c.locker(redlock.WithBackoff(backoff), redlock.WithNodeTimeout(time.Hour))
			ch := start(func() (*redlock.Lock, error) { return lk.Obtain(t.Context(), "w", time.Minute) })
			recv(t, "first failed attempt", failures)
			r, at := driveUntil(t, c.clock, epoch.Add(tc.latest+time.Millisecond), ch)
			if r.err != nil {
				t.Fatalf("Obtain: %v", r.err)
			}
			if at.Before(epoch.Add(tc.free)) {
				t.Errorf("obtained at %v, before a quorum was free at %v", at.Sub(epoch), tc.free)
			}
		})
	}
}

// When the context ends while Obtain waits to retry, the error matches both
// the context's error and the reason the last attempt failed.
func TestObtainStopsWhenContextEnds(t *testing.T) {
	for _, end := range []error{context.Canceled, context.DeadlineExceeded} {
		t.Run(end.Error(), func(t *testing.T) {
			c := newCluster(t, 3)
			for _, n := range c.nodes {
				n.Set(lockKey("c"), "someone-else", time.Hour)
			}
			backoff, failures := signalBackoff(time.Minute)
			lk := c.locker(redlock.WithBackoff(backoff))
			ctx := newEndableCtx()
			ch := start(func() (*redlock.Lock, error) { return lk.Obtain(ctx, "c", time.Second) })
			recv(t, "first failed attempt", failures)
			ctx.end(end)
			r := recv(t, "Obtain after the context ended", ch)
			if r.lock != nil {
				t.Fatalf("Obtain returned a lock")
			}
			if !errors.Is(r.err, end) || !errors.Is(r.err, redlock.ErrHeld) {
				t.Fatalf("Obtain = %v; want it to match %v and ErrHeld", r.err, end)
			}
			if qe := quorumError(t, r.err); qe.Err != redlock.ErrHeld {
				t.Errorf("last attempt: %v", qe)
			}
		})
	}
}

// A context that has already ended stops Obtain and TryObtain before any node
// is contacted.
func TestObtainContextAlreadyDone(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for name, obtain := range map[string]func(context.Context, string, time.Duration) (*redlock.Lock, error){
		"Obtain": lk.Obtain, "TryObtain": lk.TryObtain,
	} {
		l, err := obtain(ctx, "d", time.Second)
		if l != nil || !errors.Is(err, context.Canceled) {
			t.Errorf("%s = %v, %v; want context.Canceled", name, l, err)
		}
		if errors.Is(err, redlock.ErrNoQuorum) || errors.Is(err, redlock.ErrHeld) {
			t.Errorf("%s: a cancelled context is reported as a lock failure: %v", name, err)
		}
	}
	for _, n := range c.nodes {
		if recv, _ := n.Calls(); recv != 0 {
			t.Errorf("%s was called %d times", n.Addr(), recv)
		}
	}
}

// A Backoff that gives up ends Obtain with the last attempt's error.
func TestObtainBackoffGivesUp(t *testing.T) {
	c := newCluster(t, 3)
	probes := make([]pool.Pool, 3)
	for i, n := range c.nodes {
		n.Set(lockKey("g"), "someone-else", time.Hour)
		probes[i] = newProbe(n)
	}
	lk := newLocker(t, c.clock, probes, redlock.WithBackoff(redlock.LimitAttempts(redlock.ConstantBackoff(5*time.Millisecond), 3)), redlock.WithNodeTimeout(time.Hour))
	ch := start(func() (*redlock.Lock, error) { return lk.Obtain(t.Context(), "g", time.Minute) })
	r, _ := driveUntil(t, c.clock, epoch.Add(time.Second), ch)
	if !errors.Is(r.err, redlock.ErrHeld) || errors.Is(r.err, context.Canceled) {
		t.Fatalf("Obtain = %v, want the last attempt's ErrHeld", r.err)
	}
	quorumError(t, r.err)
	// The first attempt asks every node; the two after it, made once the
	// lock is known to be contended, ask the gate first, which refuses. The
	// last round was decided without waiting for every node: its calls may
	// still be on their way.
	counts := func() (most, least int) {
		least = 1 << 30
		for _, p := range probes {
			n := p.(*probe).count(scripts.Acquire.Name)
			most, least = max(most, n), min(least, n)
		}
		return most, least
	}
	eventually(t, "three attempts reach the gate, the first every node", func() bool {
		most, least := counts()
		return most >= 3 && least >= 1
	})
	if most, _ := counts(); most != 3 {
		t.Errorf("the busiest node saw %d attempts, want 3", most)
	}
	// A gate slow to answer (the fake clock runs its wait out at once)
	// has the other nodes asked too: let those calls land first.
	if err := lk.Close(); err != nil {
		t.Fatal(err)
	}
	before := make([]int, len(probes))
	for i, p := range probes {
		before[i] = p.(*probe).count(scripts.Acquire.Name)
	}

	// NoRetry makes exactly one attempt; a new Locker has seen no
	// contention, so it asks every node.
	lk = newLocker(t, c.clock, probes, redlock.WithBackoff(redlock.NoRetry()))
	if err := within(t, "Obtain", func() error { _, err := lk.Obtain(t.Context(), "g", time.Second); return err }); !errors.Is(err, redlock.ErrHeld) {
		t.Fatalf("Obtain with NoRetry = %v, want ErrHeld", err)
	}
	eventually(t, "the attempt reaches every node", func() bool {
		for i, p := range probes {
			if p.(*probe).count(scripts.Acquire.Name) < before[i]+1 {
				return false
			}
		}
		return true
	})
	for i, p := range probes {
		if got := p.(*probe).count(scripts.Acquire.Name) - before[i]; got != 1 {
			t.Errorf("%s: NoRetry made %d attempts, want 1", p.Addr(), got)
		}
	}
}

// A key of another type is not a lock: retrying cannot help, so Obtain stops
// at once with an error matching ErrWrongType.
func TestObtainWrongType(t *testing.T) {
	for _, tc := range []struct {
		n, wrong int
		obtained bool
	}{
		{n: 1, wrong: 1},
		{n: 3, wrong: 2},
		{n: 3, wrong: 3},
		{n: 3, wrong: 1, obtained: true}, // a quorum of the other nodes is enough
	} {
		t.Run(fmt.Sprintf("N=%d/wrong=%d", tc.n, tc.wrong), func(t *testing.T) {
			c := newCluster(t, tc.n)
			lk := c.locker(redlock.WithBackoff(redlock.ConstantBackoff(time.Hour)))
			for _, n := range c.nodes[:tc.wrong] {
				n.SetNonString(lockKey("t"))
			}
			// The fake clock stands still: a retry would never come back.
			l, err := within(t, "Obtain", func() result {
				l, err := lk.Obtain(t.Context(), "t", time.Second)
				return result{l, err}
			}).unpack()
			if tc.obtained {
				if err != nil {
					t.Fatalf("Obtain: %v", err)
				}
				_ = l.Release(t.Context())
				return
			}
			if !errors.Is(err, redlock.ErrWrongType) || !errors.Is(err, pool.ErrWrongType) {
				t.Fatalf("Obtain = %v, want ErrWrongType", err)
			}
			quorumError(t, err)
			if !regexp.MustCompile(`WRONGTYPE`).MatchString(err.Error()) {
				t.Errorf("the message does not show the node's reply: %v", err)
			}
		})
	}
}

// Bad names and TTLs are refused before any node is contacted.
func TestObtainRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{
		{"", time.Second},
		{"ok", 0},
		{"ok", -time.Second},
		{"ok", time.Nanosecond},
		{"ok", redlock.MinTTL - time.Millisecond},
		{"ok", redlock.MinTTL - 1}, // truncated to 9ms
	} {
		t.Run(fmt.Sprintf("%q/%v", tc.name, tc.ttl), func(t *testing.T) {
			c := newCluster(t, 3)
			lk := c.locker()
			for op, obtain := range map[string]func(context.Context, string, time.Duration) (*redlock.Lock, error){
				"Obtain": lk.Obtain, "TryObtain": lk.TryObtain,
			} {
				l, err := obtain(t.Context(), tc.name, tc.ttl)
				if l != nil || !errors.Is(err, redlock.ErrInvalid) {
					t.Errorf("%s(%q, %v) = %v, %v; want ErrInvalid", op, tc.name, tc.ttl, l, err)
				}
			}
			for _, n := range c.nodes {
				if recv, _ := n.Calls(); recv != 0 {
					t.Errorf("%s was contacted for bad input", n.Addr())
				}
			}
		})
	}
}

// MinTTL leaves some validity at every accepted drift factor, so the "too
// small for the drift" refusal can only come from a TTL below MinTTL.
func TestMinTTLLeavesValidityAtAnyDriftFactor(t *testing.T) {
	for _, f := range []float64{0, 0.01, 0.1, 0.25, 0.49, 0.4999} {
		c := newCluster(t, 1)
		lk := c.locker(redlock.WithDriftFactor(f))
		l, err := lk.TryObtain(t.Context(), "min", redlock.MinTTL)
		if err != nil {
			t.Errorf("drift factor %v: TryObtain(MinTTL): %v", f, err)
			continue
		}
		want := redlock.MinTTL - time.Duration(float64(redlock.MinTTL)*f) - 2*time.Millisecond
		if got := l.TTL(); got != want || got <= 0 {
			t.Errorf("drift factor %v: validity %v, want %v", f, got, want)
		}
	}
}

// TryObtain on a held lock fails at once with ErrHeld, and every node's vote
// tells how long the holder has left there.
func TestTryObtainHeld(t *testing.T) {
	c := newCluster(t, 3)
	obtainEverywhere(t, c, c.locker(), "held", time.Second)
	c.clock.Advance(100 * time.Millisecond)
	lk := c.locker()
	l, err := lk.TryObtain(t.Context(), "held", time.Second)
	if l != nil || !errors.Is(err, redlock.ErrHeld) {
		t.Fatalf("TryObtain = %v, %v; want ErrHeld", l, err)
	}
	qe := quorumError(t, err)
	if qe.Op != "obtain" || qe.Name != "held" || qe.Quorum != 2 || len(qe.Votes) != 3 {
		t.Errorf("QuorumError = %+v", qe)
	}
	answered := 0
	for _, v := range qe.Votes {
		if !v.Answered {
			continue // the round was decided without it
		}
		answered++
		if v.Yes || v.Err != nil || v.HolderTTL != 900*time.Millisecond {
			t.Errorf("vote %+v; want a refusal with HolderTTL 900ms", v)
		}
	}
	if answered < 2 {
		t.Errorf("%d refusals recorded, want at least 2 (what made the quorum impossible)", answered)
	}
	if free, ok := qe.HolderTTL(); !ok || free != 900*time.Millisecond {
		t.Errorf("HolderTTL() = %v, %v; want 900ms, true", free, ok)
	}
	// Once the holder's key has expired the lock is free again.
	c.clock.Advance(900 * time.Millisecond)
	if _, err := lk.TryObtain(t.Context(), "held", time.Second); err != nil {
		t.Errorf("TryObtain after the holder expired: %v", err)
	}
}

// Every lock carries a fresh 128-bit token, and names map to prefixed keys.
func TestObtainTokens(t *testing.T) {
	c := newCluster(t, 1)
	lk := c.locker()
	seen := map[string]bool{}
	hex := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for i := range 50 {
		name := fmt.Sprintf("orders:%d {x}", i)
		l, err := lk.TryObtain(t.Context(), name, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if l.Name() != name {
			t.Errorf("Name() = %q, want %q", l.Name(), name)
		}
		if !hex.MatchString(l.Token()) || seen[l.Token()] {
			t.Fatalf("token %q is not a fresh 128-bit hex value", l.Token())
		}
		seen[l.Token()] = true
		if val, _, ok := c.nodes[0].Get(lockKey(name)); !ok || val != l.Token() {
			t.Errorf("key %q = %q, %v; want the token", lockKey(name), val, ok)
		}
	}
}

// When ctx ends right after an attempt failed for a known reason, the error
// still says why: it matches ctx's error and the attempt's sentinel. The
// observer (called synchronously on the failure) ends the context at exactly
// that point.
func TestObtainContextEndsAfterFailedAttempt(t *testing.T) {
	for name, retry := range map[string]bool{"TryObtain": false, "Obtain": true} {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, 3)
			for _, n := range c.nodes {
				n.Set(lockKey("ce"), "someone-else", time.Hour)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			lk := c.locker(redlock.WithObserver(func(e redlock.Event) {
				if e.Kind == redlock.EventObtainFailed {
					cancel()
				}
			}))
			obtain := lk.TryObtain
			if retry {
				obtain = lk.Obtain
			}
			_, err := within(t, name, func() result {
				l, err := obtain(ctx, "ce", time.Second)
				return result{l, err}
			}).unpack()
			if !errors.Is(err, context.Canceled) || !errors.Is(err, redlock.ErrHeld) {
				t.Fatalf("%s = %v; want context.Canceled and ErrHeld", name, err)
			}
		})
	}
}

// Five nodes, three held by another owner, two failing: the refusals alone
// make a quorum impossible, so the verdict is ErrHeld. The round is decided
// at the third failure, so which answers come first depends on latency: if
// two of the refusals are slow, only one refusal has been seen and the same
// cluster is reported as ErrNoQuorum.
func TestObtainVerdictRefusalsAndErrorsInAnyOrder(t *testing.T) {
	knownBug(t, "fanout.go verdict is still order-dependent when refusals and errors mix: "+
		"N=5 with 3 refusals and 2 errors gives ErrHeld if the refusals answer first, ErrNoQuorum if the errors do")
	for _, slow := range []string{"errors", "refusals"} {
		t.Run("slow "+slow, func(t *testing.T) {
			c := newCluster(t, 5)
			lk := c.locker()
			for _, n := range c.nodes[:3] {
				n.Set(lockKey("mix"), "someone-else", time.Minute)
			}
			for _, n := range c.nodes[3:] {
				n.Fail(errDown)
			}
			// Slow nodes answer only when the fake clock moves, which it
			// does not during the round.
			late := c.nodes[3:]
			if slow == "refusals" {
				late = c.nodes[1:3]
			}
			for _, n := range late {
				n.SetDelay(time.Hour)
			}
			_, err := within(t, "TryObtain", func() result {
				l, err := lk.TryObtain(t.Context(), "mix", time.Second)
				return result{l, err}
			}).unpack()
			if !errors.Is(err, redlock.ErrHeld) {
				t.Fatalf("TryObtain = %v; want ErrHeld (three refusals of five block a quorum by themselves)", err)
			}
		})
	}
}
