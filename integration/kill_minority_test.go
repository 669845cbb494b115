package integration

import (
	"context"
	"testing"
	"time"
)

// Scenario 2: killing a minority (2 of 5) mid-run breaks neither mutual
// exclusion nor progress: the lock is still obtained from the three nodes
// left.
func TestKillMinorityMidRun(t *testing.T) {
	c := startCluster(t, Config{Nodes: 5})
	clients := newClients(t, c, contenders)
	rec := newRecorder()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var killed time.Time
	var progressed bool
	control := at(ctx, 2*time.Second, func() {
		defer cancel()
		if err := each(c.Nodes()[3:], func(n *Node) error { return n.Kill(ctx) }); err != nil {
			t.Errorf("killing nodes 3 and 4: %v", err)
			return
		}
		killed = rec.Now()
		t.Logf("nodes 3 and 4 killed")
		progressed = awaitProgress(ctx, rec, killed, 3*time.Second)
	})
	stats := workload(rec, "kill-minority").Run(ctx, lockers(clients))
	<-control

	logStats(t, stats)
	requireExclusive(t, rec)
	if killed.IsZero() {
		t.Fatal("the nodes were never killed")
	}
	after := map[string]int{}
	total := 0
	for _, s := range rec.Sections() {
		if !s.Acquired.Before(killed) {
			after[s.Holder]++
			total++
		}
	}
	t.Logf("sections acquired after the kill: %d, per client: %v", total, after)
	if !progressed {
		t.Errorf("no client got the lock within %v of the kill", progressWait)
	}
}
