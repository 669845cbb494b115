package integration

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/internal/history"
	"github.com/quorumlock/quorumlock/redlock"
)

// Scenario 7: the hazard Redlock documents for nodes that forget. On three
// nodes, client A holds the lock on nodes 0 and 1 only (node 2 was cut off
// when A locked). Node 1 crashes and restarts. Client B, trying all along,
// then asks for the lock while A still holds it:
//
//   - without persistence, node 1 comes back empty and grants B the lock, and
//     so does node 2: B holds a quorum while A still does. The history
//     checker must report that overlap: this case proves the checker can fail;
//   - the remedies remove the overlap: keeping node 1 down for longer than
//     the TTL (every lock it granted has expired before it rejoins), or
//     making it fsync every write (AOF, appendfsync always) so that it comes
//     back still holding A's lock.
func TestRestartWithoutPersistence(t *testing.T) {
	const (
		// long is the TTL when node 1 restarts at once: a restart takes a
		// second or two, more on a loaded machine, and must end well within
		// A's validity. A does not hold its lock that long (see holdAfter).
		long = 15 * time.Second
		// short is the TTL when the restart waits for the TTL to pass.
		short = 3 * time.Second
		// holdAfter is how long A keeps the lock after node 1 is back: B,
		// trying meanwhile (at least once a second, a contended attempt
		// asking every node at least every other second), would get in
		// within that time if node 1 had forgotten A's lock, even on a
		// loaded machine. A node just restarted may first let a call run
		// out its node timeout (1s), and is then skipped for a second: B
		// took 1.3-2.4s on an idle machine, and once over 4.5s in CI.
		holdAfter = 8 * time.Second
	)
	tests := []struct {
		name         string
		persistence  Persistence
		ttl          time.Duration
		restartAfter time.Duration // from the crash to the restart
		forgets      bool          // whether node 1 comes back without A's key
		quarantine   bool          // the clients' restart quarantine (the default)
		wantOverlap  bool
	}{
		{"hazard: immediate restart without persistence, quarantine off", NoPersistence, long, 0, true, false, true},
		{"quarantine: immediate restart without persistence", NoPersistence, long, 0, true, true, false},
		{"remedy: restart delayed past the TTL", NoPersistence, short, short + short/4, true, false, false},
		{"remedy: AOF with appendfsync always", AOFAlways, long, 0, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startCluster(t, Config{Nodes: 3, Persistence: tt.persistence})
			var opts []redlock.Option
			if !tt.quarantine {
				opts = append(opts, redlock.WithoutRestartQuarantine())
			}
			clients := newClients(t, c, 2, opts...)
			// The cluster has been running for an hour: every node's boot
			// marker (the key a node loses with its data, whose age every
			// acquire reports) says so. A fresh cluster, where every node is
			// new, is not quarantined: no node remembers any lock there.
			ageBootMarkers(t, c, time.Hour)
			a, b := clients[0], clients[1]
			rec := newRecorder()
			ctx := context.Background()
			const name = "restart"
			key := redlock.DefaultKeyPrefix + name

			// A locks while node 2 is cut off: it holds nodes 0 and 1, a
			// bare quorum.
			c.Node(2).Cut()
			ttl := tt.ttl
			lockA, err := a.TryObtain(ctx, name, ttl)
			acquiredA := rec.Now()
			// The round was decided without node 2: let its call fail
			// against the cut (at once) before healing, or it could still
			// be sent after.
			time.Sleep(200 * time.Millisecond)
			c.Node(2).Heal()
			if err != nil {
				t.Fatalf("A: %v", err)
			}
			for i, want := range []string{lockA.Token(), lockA.Token(), ""} {
				if got := get(t, c.Node(i), key); got != want {
					t.Fatalf("node %d holds %q, want %q: the crafted start did not happen", i, got, want)
				}
			}

			// B tries from the moment node 1 crashes.
			runID, err := c.Node(1).RunID(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Node(1).Kill(ctx); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				octx, cancel := context.WithTimeout(ctx, 2*ttl+5*time.Second)
				defer cancel()
				lockB, err := b.Obtain(octx, name, ttl)
				if err != nil {
					t.Errorf("B never got the lock: %v", err)
					return
				}
				acquiredB := rec.Now()
				time.Sleep(100 * time.Millisecond)
				rec.Add(history.Section{Holder: "B", Name: name, Acquired: acquiredB, ValidUntil: lockB.ValidUntil(), Released: rec.Now()})
				if err := lockB.Release(ctx); err != nil {
					t.Errorf("B release: %v", err)
				}
			}()

			time.Sleep(tt.restartAfter)
			if err := c.Node(1).Start(ctx); err != nil {
				t.Fatal(err)
			}
			restarted := rec.Now()
			if id, err := c.Node(1).RunID(ctx); err != nil || id == runID {
				t.Fatalf("node 1 run_id %q before the crash, %q (%v) after: it did not restart", runID, id, err)
			}
			if tt.restartAfter == 0 && restarted.Add(holdAfter).After(lockA.ValidUntil()) {
				t.Fatalf("node 1 restarted %v after A locked, too late within A's TTL of %v for the crafted case: the machine is too loaded",
					restarted.Sub(acquiredA), ttl)
			}
			held := get(t, c.Node(1), key) == lockA.Token()
			if held == tt.forgets {
				t.Fatalf("node 1 holds A's key after the restart: %v, want %v", held, !tt.forgets)
			}
			t.Logf("node 1 restarted %v after A locked (%v), holding A's key: %v",
				restarted.Sub(acquiredA).Round(time.Millisecond), tt.persistence, held)

			// A works on for a while (or until just before its validity
			// ends), then releases.
			endA := restarted.Add(holdAfter)
			if v := lockA.ValidUntil().Add(-50 * time.Millisecond); v.Before(endA) {
				endA = v
			}
			time.Sleep(time.Until(endA))
			rec.Add(history.Section{Holder: "A", Name: name, Acquired: acquiredA, ValidUntil: lockA.ValidUntil(), Released: rec.Now()})
			if err := lockA.Release(ctx); err != nil {
				t.Logf("A release: %v", err)
			}
			wg.Wait()

			res := history.Check(rec.Sections())
			if res.Sections != 2 {
				t.Fatalf("history: %v, want A's and B's sections", res)
			}
			if !tt.wantOverlap {
				requireExclusive(t, rec)
				return
			}
			if len(res.Overlaps()) == 0 {
				t.Fatalf("the checker found no overlap in the crafted hazard: %v", res)
			}
			for _, v := range res.Overlaps() {
				t.Logf("the checker found the hazard, as it must: %v", v)
			}
		})
	}
}

// get returns the value of key on n, read directly, or "" if there is none.
// bootMarkerKey is the key under which each node keeps the server time at
// which it last found itself without data (see internal/scripts.Acquire).
const bootMarkerKey = "\x00boot:" + redlock.DefaultKeyPrefix

// ageBootMarkers sets every node's boot marker to age ago, by its own clock.
func ageBootMarkers(t *testing.T, c *Cluster, age time.Duration) {
	t.Helper()
	ctx := context.Background()
	for i := range 3 {
		n := c.Node(i)
		reply, err := n.Do(ctx, "TIME")
		if err != nil {
			t.Fatal(err)
		}
		tm, _ := reply.([]any)
		if len(tm) != 2 {
			t.Fatalf("TIME on %v = %v", n, reply)
		}
		secs, _ := strconv.ParseInt(string(tm[0].([]byte)), 10, 64)
		ms := secs*1000 - age.Milliseconds()
		if _, err := n.Do(ctx, "SET", bootMarkerKey, strconv.FormatInt(ms, 10)); err != nil {
			t.Fatal(err)
		}
	}
}

func get(t *testing.T, n *Node, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := redis.String(n.Do(ctx, "GET", key))
	if err == redis.ErrNil {
		return ""
	}
	if err != nil {
		t.Fatalf("GET %s on %v: %v", key, n, err)
	}
	return v
}
