package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/history"
	"github.com/quorumlock/quorumlock/redlock"
)

// Scenario 8: a lock whose validity has elapsed is never reported as released
// or extended. Release and Extend must return an error matching ErrNotHeld
// once the validity is over, whether the client noticed the time passing,
// the nodes expired the key early, or another client has since taken the
// lock; and, in a race at the boundary, a call that succeeded must have
// started before the validity ended.
func TestExpiredLockIsNeverReleasedOrExtended(t *testing.T) {
	c := startCluster(t, Config{Nodes: 5})
	clients := newClients(t, c, contenders)
	ctx := context.Background()
	const ttl = 300 * time.Millisecond

	// expireOnNodes makes the lock's key expire now on the given nodes, as
	// a node whose clock ran fast would have. Obtain returned once a quorum
	// answered: a node's acquire call may still be on its way, and would set
	// the key after it was expired. So each node is asked until it has the
	// key to expire, for a while: a node never asked has none.
	expireOnNodes := func(t *testing.T, lock *redlock.Lock, nodes []*Node) {
		t.Helper()
		for _, n := range nodes {
			for deadline := time.Now().Add(time.Second); ; {
				reply, err := n.Do(ctx, "PEXPIRE", redlock.DefaultKeyPrefix+lock.Name(), 1)
				if err != nil {
					t.Fatal(err)
				}
				if set, _ := reply.(int64); set == 1 || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitExpired := func(lock *redlock.Lock) { time.Sleep(time.Until(lock.ValidUntil()) + time.Millisecond) }
	release := func(l *redlock.Lock) error { return l.Release(ctx) }
	extend := func(l *redlock.Lock) error { return l.Extend(ctx, ttl) }

	tests := []struct {
		name string
		// setup runs between Obtain and the call; it may use the second
		// client.
		setup func(t *testing.T, lock *redlock.Lock, other *Client)
		call  func(*redlock.Lock) error
	}{
		{"release after the validity elapsed", func(_ *testing.T, l *redlock.Lock, _ *Client) { waitExpired(l) }, release},
		{"extend after the validity elapsed", func(_ *testing.T, l *redlock.Lock, _ *Client) { waitExpired(l) }, extend},
		{"release after a majority of nodes expired the key", func(t *testing.T, l *redlock.Lock, _ *Client) {
			expireOnNodes(t, l, c.Nodes()[:3])
		}, release},
		{"extend after a majority of nodes expired the key", func(t *testing.T, l *redlock.Lock, _ *Client) {
			expireOnNodes(t, l, c.Nodes()[:3])
		}, extend},
		{"release after another client took the lock", func(t *testing.T, l *redlock.Lock, other *Client) {
			takeOver(t, l, other)
		}, release},
		{"extend after another client took the lock", func(t *testing.T, l *redlock.Lock, other *Client) {
			takeOver(t, l, other)
		}, extend},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("expiry-%d", i)
			lock, err := clients[0].TryObtain(ctx, name, ttl)
			if err != nil {
				t.Fatal(err)
			}
			tt.setup(t, lock, clients[1])
			if err := tt.call(lock); !errors.Is(err, redlock.ErrNotHeld) {
				t.Errorf("got %v, want an error matching ErrNotHeld", err)
			} else {
				t.Logf("as expected: %v", err)
			}
		})
	}

	t.Run("race at the end of the validity", func(t *testing.T) {
		raceExpiry(t, lockers(clients))
	})
}

// takeOver has other obtain lock's name, which it can only do once lock has
// expired. When the test ends, it checks that the old holder's call left the
// new holder's key alone: the new holder can still extend its lock.
func takeOver(t *testing.T, lock *redlock.Lock, other *Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	theirs, err := other.Obtain(ctx, lock.Name(), 2*time.Second)
	if err != nil {
		t.Fatalf("the other client could not take the expired lock: %v", err)
	}
	t.Cleanup(func() {
		if err := theirs.Extend(context.Background(), 2*time.Second); err != nil {
			t.Errorf("the new holder lost its lock to the old holder's call: %v", err)
		}
		_ = theirs.Release(context.Background())
	})
}

// raceExpiry has clients contend for two locks and call Release or Extend at
// a random moment within a few milliseconds of the end of the validity. A
// call that returned nil must have started before the validity ended; one
// that started after must fail with ErrNotHeld. Every section goes to the
// history checker, extensions included. Both sides of the boundary must be
// hit, or the test would prove nothing.
func raceExpiry(t *testing.T, lockers []*redlock.Locker) {
	const (
		ttl        = 150 * time.Millisecond
		iterations = 10
		jitter     = 8 * time.Millisecond
	)
	rec := newRecorder()
	var before, after, succeeded atomic.Int64
	var wg sync.WaitGroup
	for i, lk := range lockers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprintf("client-%d", i)
			name := fmt.Sprintf("race-%d", i%2)
			for range iterations {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				lock, err := lk.Obtain(ctx, name, ttl)
				if err != nil {
					cancel()
					t.Errorf("%s: %v", holder, err)
					return
				}
				s := history.Section{Holder: holder, Name: name, Acquired: rec.Now(), ValidUntil: lock.ValidUntil()}
				time.Sleep(time.Until(s.ValidUntil) + time.Duration(rand.Int64N(int64(2*jitter))) - jitter)
				op, call := "release", lock.Release
				if rand.IntN(2) == 0 {
					op, call = "extend", func(ctx context.Context) error { return lock.Extend(ctx, ttl) }
				}
				called := rec.Now()
				err = call(ctx)
				late := !called.Before(s.ValidUntil)
				if late {
					after.Add(1)
				} else {
					before.Add(1)
				}
				switch {
				case err == nil && late:
					t.Errorf("%s: %s succeeded though called %v after the validity ended", holder, op, called.Sub(s.ValidUntil))
				case err != nil && late && !errors.Is(err, redlock.ErrNotHeld):
					t.Errorf("%s: late %s: %v, want an error matching ErrNotHeld", holder, op, err)
				case err == nil:
					succeeded.Add(1)
				}
				if op == "extend" {
					// The section lasts as long as the lock now says, and
					// ends with a release.
					s.ValidUntil = lock.ValidUntil()
					s.Released = rec.Now()
					_ = lock.Release(ctx)
				} else {
					s.Released = called
				}
				rec.Add(s)
				cancel()
			}
		}()
	}
	wg.Wait()
	t.Logf("calls before the end of the validity: %d, after: %d, succeeded: %d", before.Load(), after.Load(), succeeded.Load())
	if before.Load() == 0 || after.Load() == 0 {
		t.Errorf("the race missed one side of the boundary (before %d, after %d)", before.Load(), after.Load())
	}
	requireExclusive(t, rec)
}
