package integration

import (
	"context"
	"testing"
	"time"
)

// Scenario 4: a node that hangs for longer than the TTL (a paused container:
// connections stay open, commands wait) and then comes back, answering
// everything it was sent meanwhile, breaks neither mutual exclusion nor
// progress.
func TestPausedNodePastTTL(t *testing.T) {
	c := startCluster(t, Config{Nodes: 5})
	clients := newClients(t, c, contenders)
	rec := newRecorder()
	w := workload(rec, "paused")
	hung := c.Node(0)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var paused, resumed time.Time
	var during, after bool
	control := at(ctx, time.Second, func() {
		defer cancel()
		if err := hung.Pause(ctx); err != nil {
			t.Errorf("pause: %v", err)
			return
		}
		paused = rec.Now()
		// Hung for more than twice the TTL, and until a client got the
		// lock meanwhile.
		during = awaitProgress(ctx, rec, paused, 2*w.TTL+w.TTL/2)
		// Not ctx: the node must come back even if the run is cut short.
		if err := hung.Unpause(context.WithoutCancel(ctx)); err != nil {
			t.Errorf("unpause: %v", err)
			return
		}
		resumed = rec.Now()
		after = awaitProgress(ctx, rec, resumed, 2*time.Second)
	})
	stats := w.Run(ctx, lockers(clients))
	<-control

	logStats(t, stats)
	requireExclusive(t, rec)
	if paused.IsZero() || resumed.IsZero() {
		t.Fatal("the node was not paused and resumed")
	}
	sections := rec.Sections()
	t.Logf("%v hung for %v: %d sections meanwhile, %d after it resumed", hung, resumed.Sub(paused).Round(time.Millisecond),
		Between(sections, paused, resumed), Between(sections, resumed, rec.Now()))
	if !during {
		t.Errorf("no client got the lock while %v hung", hung)
	}
	if !after {
		t.Errorf("no client got the lock within %v of %v resuming", progressWait, hung)
	}
}
