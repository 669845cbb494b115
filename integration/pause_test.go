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
	pauseFor := 2*w.TTL + w.TTL/2
	hung := c.Node(0)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second+pauseFor+2*time.Second)
	defer cancel()
	var paused, resumed time.Time
	faults := at(ctx, time.Second, func() {
		if err := hung.Pause(ctx); err != nil {
			t.Errorf("pause: %v", err)
			return
		}
		paused = rec.Now()
		time.Sleep(pauseFor)
		// Not ctx: the node must come back even if the run is cut short.
		if err := hung.Unpause(context.WithoutCancel(ctx)); err != nil {
			t.Errorf("unpause: %v", err)
		}
		resumed = rec.Now()
	})
	stats := w.Run(ctx, lockers(clients))
	<-faults

	logStats(t, stats)
	requireExclusive(t, rec)
	if paused.IsZero() || resumed.IsZero() {
		t.Fatal("the node was not paused and resumed")
	}
	sections := rec.Sections()
	during, after := Between(sections, paused, resumed), Between(sections, resumed, rec.Now())
	t.Logf("%v paused for %v: %d sections while it hung, %d after it resumed", hung, pauseFor, during, after)
	if during == 0 {
		t.Errorf("no client got the lock while %v hung", hung)
	}
	if after == 0 {
		t.Errorf("no client got the lock after %v resumed", hung)
	}
}
