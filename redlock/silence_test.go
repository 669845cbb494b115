package redlock_test

import (
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/redlock"
)

// A node that let a call run out the node timeout is not asked again for a
// second: rounds go on without a call to it. Then one call probes it; while
// the probe waits, the others still skip the node, and once it answers the
// node is asked again.
func TestTimedOutNodeIsSkippedThenProbed(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker(redlock.WithNodeTimeout(100*time.Millisecond), redlock.WithBackoff(redlock.NoRetry()))
	hung := c.nodes[2]
	calls := func() int { n, _ := hung.Calls(); return n }
	round := func(name string) { t.Helper(); tryRound(t, lk, name) }
	hung.Hang()
	// The hung node's acquire call waits; the release is not sent to a
	// node that has not answered (its call cleans up after itself).
	round("a")
	eventually(t, "the acquire call reaches the hung node", func() bool { return calls() == 1 })
	c.clock.Advance(100 * time.Millisecond)
	// It runs out the node timeout: the node is paused, and its clean-up
	// is not sent either.
	eventually(t, "the call runs out the node timeout", func() bool { return hung.Finished() == 1 })

	round("b")
	round("c")
	if n := calls(); n != 1 {
		t.Fatalf("the hung node received %d calls, want none after its timeout", n-1)
	}

	c.clock.Advance(time.Second)
	round("d") // its acquire call probes the node
	eventually(t, "the probe reaches the node", func() bool { return calls() == 2 })
	round("e")
	if n := calls(); n != 2 {
		t.Fatalf("the hung node received %d calls besides the probe, want none while it waits", n-2)
	}

	// The probe is answered: the pause ends, and d's key there is cleaned
	// up; then every call reaches the node again.
	hung.Unhang()
	eventually(t, "the probe's clean-up reaches the node", func() bool { return calls() == 3 })
	round("f")
	eventually(t, "the node is asked again", func() bool { return calls() == 5 })
}
