package integration

import (
	"context"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/history"
)

// Scenario 1: on a healthy cluster, contending clients never overlap and every
// one of them gets the lock.
func TestHealthyClusterMutualExclusion(t *testing.T) {
	const least = 3 * time.Second
	c := startCluster(t, Config{})
	clients := newClients(t, c, contenders)
	rec := newRecorder()

	// Run for a few seconds, longer if a client has not had the lock yet
	// (a loaded machine), but never longer than progressWait.
	ctx, cancel := context.WithTimeout(context.Background(), progressWait)
	defer cancel()
	control := at(ctx, least, func() {
		for ctx.Err() == nil && !everyHolderIn(rec.Sections(), len(clients)) {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	})
	stats := workload(rec, "healthy").Run(ctx, lockers(clients))
	<-control

	logStats(t, stats)
	requireExclusive(t, rec)
	for _, s := range stats {
		if s.Acquired == 0 {
			t.Errorf("%s never got the lock (last error: %v)", s.Holder, s.LastErr)
		}
	}
}

// everyHolderIn reports whether n distinct holders appear in sections.
func everyHolderIn(sections []history.Section, n int) bool {
	seen := map[string]bool{}
	for _, s := range sections {
		seen[s.Holder] = true
	}
	return len(seen) >= n
}
