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
	// nobody holds, for up to a TTL. Each phase lasts at least its time and
	// until some client got the lock in it (at most progressWait).
	type step struct {
		name  string
		fault func(*Node)
		least time.Duration
	}
	steps := []step{
		{"healthy", nil, time.Second},
		{"refused", (*Node).Cut, 2 * time.Second},
		{"healed after refused", nil, 1500 * time.Millisecond},
		{"silent", (*Node).Hold, 3 * time.Second},
		{"healed after silent", nil, 2 * time.Second},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	starts := make([]time.Time, len(steps)+1)
	progressed := make([]bool, len(steps))
	control := at(ctx, 0, func() {
		defer cancel()
		defer func() {
			for _, n := range minority {
				n.Heal()
			}
		}()
		for i, s := range steps {
			for _, n := range minority {
				if s.fault != nil {
					s.fault(n)
				} else {
					n.Heal()
				}
			}
			starts[i] = rec.Now()
			if progressed[i] = awaitProgress(ctx, rec, starts[i], s.least); !progressed[i] {
				return
			}
		}
	})
	stats := workload(rec, "partition").Run(ctx, lockers(clients))
	<-control
	for i := range starts {
		if starts[i].IsZero() {
			starts[i] = rec.Now()
		}
	}

	logStats(t, stats)
	requireExclusive(t, rec)
	sections := rec.Sections()
	for i, s := range steps {
		t.Logf("%-22s %v, %d sections", s.name+":", starts[i+1].Sub(starts[i]).Round(time.Millisecond), Between(sections, starts[i], starts[i+1]))
		if !progressed[i] {
			t.Errorf("no client got the lock within %v while the minority was %s", progressWait, s.name)
			break
		}
	}
}
