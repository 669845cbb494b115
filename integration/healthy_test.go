package integration

import (
	"context"
	"testing"
	"time"
)

// Scenario 1: on a healthy cluster, contending clients never overlap and every
// one of them gets the lock.
func TestHealthyClusterMutualExclusion(t *testing.T) {
	c := startCluster(t, Config{})
	clients := newClients(t, c, contenders)
	rec := newRecorder()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	stats := workload(rec, "healthy").Run(ctx, lockers(clients))

	logStats(t, stats)
	requireExclusive(t, rec)
	for _, s := range stats {
		if s.Acquired == 0 {
			t.Errorf("%s never got the lock (last error: %v)", s.Holder, s.LastErr)
		}
	}
}
