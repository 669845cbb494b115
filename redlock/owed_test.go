package redlock_test

import (
	"context"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/redlock"
)

// A SIGSTOPped redis-server carries out the calls it holds once it is
// resumed, those that ran out their node timeout meanwhile included: the
// acquire call of a lock released since then sets the key after the release
// skipped the paused node. The release is owed to the node, and reaches it
// once it answers again: the key does not refuse every contender there
// until its TTL runs out.
func TestOwedReleaseFreesAHungNodeThatComesBack(t *testing.T) {
	const ttl = time.Minute
	servers := redistest.Start(t, 3)
	hung := servers[2]
	lk := adminLocker(t, servers, redlock.WithNodeTimeout(200*time.Millisecond))
	ctx := context.Background()
	tryRound(t, lk, "warm-up") // connections open, scripts loaded

	if err := hung.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hung.Resume() })
	l, err := lk.TryObtain(ctx, "owed", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// The hung node's acquire call runs out its node timeout: the node is
	// paused for a second, and the release meant for it is owed.
	time.Sleep(600 * time.Millisecond)
	if err := hung.Resume(); err != nil {
		t.Fatal(err)
	}
	key := redlock.DefaultKeyPrefix + "owed"
	// The late acquire call runs now; the owed release follows once the
	// node's pause (a second from its timeout) is over.
	if v, _ := redisDo(t, hung, "GET", key).([]byte); string(v) != l.Token() {
		t.Fatalf("the resumed node holds %q, want the released lock's token: the late acquire call did not run after the release", v)
	}
	deadline := time.Now().Add(ttl / 3)
	for {
		v, _ := redisDo(t, hung, "GET", key).([]byte)
		if string(v) != l.Token() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the resumed node still holds the released lock's key %v after its resumption (TTL %v)", ttl/3, ttl)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The lock is free on every node: another Locker gets all three votes.
	other := adminLocker(t, servers)
	l2, err := other.TryObtain(ctx, "owed", ttl)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l2.Release(ctx) }()
	if v, _ := redisDo(t, hung, "GET", key).([]byte); string(v) != l2.Token() {
		t.Fatalf("the resumed node holds %q, want the new owner's token", v)
	}
}
