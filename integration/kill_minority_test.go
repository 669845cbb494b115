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

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	var killed time.Time
	faults := at(ctx, 2*time.Second, func() {
		if err := each(c.Nodes()[3:], func(n *Node) error { return n.Kill(ctx) }); err != nil {
			t.Errorf("killing nodes 3 and 4: %v", err)
		}
		killed = rec.Now()
		t.Logf("nodes 3 and 4 killed")
	})
	stats := workload(rec, "kill-minority").Run(ctx, lockers(clients))
	<-faults

	logStats(t, stats)
	requireExclusive(t, rec)
	if killed.IsZero() {
		t.Fatal("the nodes were never killed")
	}
	after := map[string]int{}
	total := 0
	for _, s := range rec.Sections() {
		if s.Acquired.After(killed) {
			after[s.Holder]++
			total++
		}
	}
	t.Logf("sections acquired after the kill: %d, per client: %v", total, after)
	if total == 0 {
		t.Errorf("no client got the lock after the kill")
	}
}
