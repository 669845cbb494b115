package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/redlock"
)

// Scenario 6: one node 100ms slower than the others does not slow Obtain: the
// coordinator decides as soon as a quorum has answered. The probe's per-node
// timeout is set far above the added latency, so that only that early
// decision, not the timeout, can keep it fast. Medians measured in the same
// test are compared, loosely, while other clients contend for another lock.
func TestSlowNodeDoesNotSlowObtain(t *testing.T) {
	const (
		latency = 100 * time.Millisecond
		samples = 40
		ttl     = 2 * time.Second
		// margin is far below latency, so that a coordinator that waited for
		// the slow node would fail, and far above what a loaded machine adds.
		margin = 50 * time.Millisecond
	)
	c := startCluster(t, Config{Nodes: 5})
	clients := newClients(t, c, contenders)
	probe := newClients(t, c, 1, redlock.WithNodeTimeout(10*latency))[0]
	rec := newRecorder()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan []Stats, 1)
	go func() { done <- workload(rec, "latency-background").Run(ctx, lockers(clients)) }()

	healthy := medianObtain(t, probe, "healthy", samples, ttl)

	slow := c.Node(0)
	slow.SetLatency(latency)
	// The fault is real: a round trip to that node takes the added latency.
	rtt, err := pingRTT(slow.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if rtt < latency {
		t.Fatalf("PING through %v took %v, less than the injected %v", slow, rtt, latency)
	}
	slowed := medianObtain(t, probe, "one slow node", samples, ttl)

	cancel()
	stats := <-done
	logStats(t, stats)
	requireExclusive(t, rec)
	t.Logf("median Obtain: %v healthy, %v with %v on %v (PING through it: %v)",
		healthy.Round(time.Microsecond), slowed.Round(time.Microsecond), latency, slow, rtt.Round(time.Millisecond))
	if healthy >= margin {
		t.Fatalf("healthy median %v: the machine is too loaded to compare against %v", healthy, margin)
	}
	if slowed >= healthy+margin {
		t.Errorf("median Obtain with one slow node %v, healthy %v: the coordinator waited for the slow node", slowed, healthy)
	}
}

// medianObtain times TryObtain of uncontended locks (a new name each time,
// released at once) and returns the median.
func medianObtain(t *testing.T, cl *Client, label string, n int, ttl time.Duration) time.Duration {
	t.Helper()
	took := make([]time.Duration, 0, n)
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		lock, err := cl.TryObtain(ctx, fmt.Sprintf("probe-%s-%d", label, i), ttl)
		took = append(took, time.Since(start))
		if err != nil {
			cancel()
			t.Fatalf("%s: TryObtain of an uncontended lock: %v", label, err)
		}
		if err := lock.Release(ctx); err != nil {
			t.Errorf("%s: release: %v", label, err)
		}
		cancel()
	}
	slices.Sort(took)
	return took[len(took)/2]
}

// pingRTT times one PING on an open connection to addr.
func pingRTT(addr string) (time.Duration, error) {
	conn, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(5*time.Second))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Do("PING"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
