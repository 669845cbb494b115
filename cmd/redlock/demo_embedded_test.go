package main

import (
	"strings"
	"testing"
	"time"
)

// On a machine without redis-server the demo runs on in-process nodes, says
// so, and shows everything it shows on real servers.
func TestDemoWithoutRedisServerRunsOnEmbeddedNodes(t *testing.T) {
	r := runCLI(t, 2*time.Minute, []string{"PATH=/nonexistent", "QUORUMLOCK_REDIS_SERVER="}, "demo")
	if r.code != exitOK {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"redis-server not found: running on embedded in-process nodes",
		"--nodes",
		"5 embedded in-process nodes (miniredis), quorum 3",
		"OVERSOLD",
		"with the lock:    sold 10 of 10: exactly the stock",
		"killed after sale 5; 4 of 5 nodes left, quorum 3",
		"verdict: OK",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	assertClosed(t, r.stdout)
}
