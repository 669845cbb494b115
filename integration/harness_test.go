package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// The harness's own faults are checked against Redis itself before the
// scenarios rely on them: a fault that silently did nothing would make every
// scenario pass.

// Restarts keep or lose data as each persistence promises.
func TestHarnessRestartKeepsWhatPersistencePromises(t *testing.T) {
	tests := []struct {
		name        string
		persistence Persistence
		crash       bool // Kill (SIGKILL) rather than Stop (SIGTERM)
		kept        bool
	}{
		{"no persistence, graceful stop", NoPersistence, false, false},
		{"snapshot, graceful stop", Snapshot, false, true},
		{"snapshot, crash", Snapshot, true, false},
		{"AOF always, crash", AOFAlways, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := startCluster(t, Config{Nodes: 1, Persistence: tt.persistence}).Node(0)
			ctx := context.Background()
			if _, err := n.Do(ctx, "SET", "k", "v", "PX", 60000); err != nil {
				t.Fatal(err)
			}
			before, err := n.RunID(ctx)
			if err != nil {
				t.Fatal(err)
			}
			stop := n.Stop
			if tt.crash {
				stop = n.Kill
			}
			if err := stop(ctx); err != nil {
				t.Fatal(err)
			}
			if err := n.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if after, err := n.RunID(ctx); err != nil || after == before {
				t.Fatalf("run_id %q before, %q (%v) after: not restarted", before, after, err)
			}
			v, err := redis.String(n.Do(ctx, "GET", "k"))
			if kept := err == nil && v == "v"; kept != tt.kept {
				t.Fatalf("after the restart GET k = %q, %v; want kept=%v", v, err, tt.kept)
			}
			if tt.kept {
				// The expiry survives too: a restored lock still expires.
				if pttl, err := redis.Int64(n.Do(ctx, "PTTL", "k")); err != nil || pttl <= 0 || pttl > 60000 {
					t.Fatalf("PTTL k = %d, %v after the restart", pttl, err)
				}
			}
			// Clients reach it again through the same address.
			if _, err := pingRTT(n.Addr()); err != nil {
				t.Fatalf("PING through the proxy after the restart: %v", err)
			}
		})
	}
}

// Pause hangs the node without closing connections; Unpause answers again.
func TestHarnessPauseHangs(t *testing.T) {
	n := startCluster(t, Config{Nodes: 1}).Node(0)
	ctx := context.Background()
	conn, err := redis.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := n.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = redis.DoWithTimeout(conn, 300*time.Millisecond, "PING")
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("PING to a paused node: %v, want a timeout", err)
	}
	if err := n.Unpause(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pingRTT(n.Addr()); err != nil {
		t.Errorf("PING after Unpause: %v", err)
	}
}
