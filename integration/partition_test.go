package integration

import (
	"context"
	"testing"
	"time"
)

// Scenario 5: a minority (2 of 5) cut off from every client, then healed,
// breaks neither mutual exclusion nor progress. The link fails in the two
// ways a network does: refused (connections reset at once) and silent
// (bytes held until the partition heals, then delivered late, stale lock
// requests included).
func TestPartitionMinorityThenHeal(t *testing.T) {
	c := startCluster(t, Config{Nodes: 5})
	clients := newClients(t, c, contenders)
	rec := newRecorder()
	minority := c.Nodes()[3:]

	// With two nodes out, a client needs all three others: contenders split
	// the votes more often, and while the link is silent a split round only
	// ends at the per-node timeout. When a silent link heals, the lock
	// requests it held reach the two nodes late and leave keys there that
	// nobody holds, for up to a TTL. Phases are long enough for progress to
	// show through both.
	type step struct {
		name  string
		fault func(*Node)
		lasts time.Duration
	}
	steps := []step{
		{"healthy", nil, time.Second},
		{"refused", (*Node).Cut, 2 * time.Second},
		{"healed after refused", nil, 1500 * time.Millisecond},
		{"silent", (*Node).Hold, 3 * time.Second},
		{"healed after silent", nil, 3 * time.Second},
	}
	var total time.Duration
	for _, s := range steps {
		total += s.lasts
	}
	ctx, cancel := context.WithTimeout(context.Background(), total)
	defer cancel()
	starts := make([]time.Time, len(steps)+1)
	faults := at(ctx, 0, func() {
		for i, s := range steps {
			for _, n := range minority {
				if s.fault != nil {
					s.fault(n)
				} else {
					n.Heal()
				}
			}
			starts[i] = rec.Now()
			select {
			case <-time.After(s.lasts):
			case <-ctx.Done():
			}
		}
		for _, n := range minority {
			n.Heal()
		}
	})
	stats := workload(rec, "partition").Run(ctx, lockers(clients))
	<-faults
	starts[len(steps)] = rec.Now()

	logStats(t, stats)
	requireExclusive(t, rec)
	sections := rec.Sections()
	for i, s := range steps {
		n := Between(sections, starts[i], starts[i+1])
		t.Logf("%-22s %d sections", s.name+":", n)
		if n == 0 {
			t.Errorf("no client got the lock while the minority was %s", s.name)
		}
	}
}
