package redlock_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/redlock"
)

// A node that let a call run out the node timeout is not asked again for a
// second: rounds go on without a call to it. Then one call probes it (here
// the release owed to it, owed.go); while the probe waits, the others still
// skip the node, and once it answers the node is asked again.
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
	// is owed to it, not sent; the timer that pays it when the pause ends
	// is armed once the pause has begun.
	eventually(t, "the call runs out the node timeout, and its clean-up is owed", func() bool {
		next, ok := c.clock.NextDeadline()
		return hung.Finished() == 1 && ok && next.Sub(c.clock.Now()) > 900*time.Millisecond
	})

	round("b")
	round("c")
	if n := calls(); n != 1 {
		t.Fatalf("the hung node received %d calls, want none after its timeout", n-1)
	}

	c.clock.Advance(time.Second)
	// The pause is over: the owed clean-up of a's key probes the node.
	eventually(t, "the owed clean-up probes the node", func() bool { return calls() == 2 })
	round("d")
	round("e")
	if n := calls(); n != 2 {
		t.Fatalf("the hung node received %d calls besides the probe, want none while it waits", n-2)
	}

	// The probe is answered: the pause ends, and every call reaches the
	// node again.
	hung.Unhang()
	eventually(t, "the probe is answered", func() bool { return hung.Finished() == 2 })
	// (The pause ends just after the node's answer is read.)
	k := 0
	eventually(t, "the node is asked again", func() bool {
		k++
		round("f" + strconv.Itoa(k))
		return calls() > 2
	})
}

// A node that refuses connections (down, or restarting) is paused as one
// that timed out: rounds skip it for a second with an error that still
// matches the refusal, then one call probes it, and once it answers it is
// asked again.
func TestRefusingNodeIsSkippedThenProbed(t *testing.T) {
	c := newCluster(t, 3)
	var mu sync.Mutex
	var errs []error
	lk := c.locker(redlock.WithBackoff(redlock.NoRetry()), redlock.WithObserver(func(e redlock.Event) {
		if e.Kind == redlock.EventNodeError && e.Node == c.nodes[2].Addr() {
			mu.Lock()
			errs = append(errs, e.Err)
			mu.Unlock()
		}
	}))
	down := c.nodes[2]
	calls := func() int { n, _ := down.Calls(); return n }
	round := func(name string) { t.Helper(); tryRound(t, lk, name) }
	down.Fail(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	round("a")
	eventually(t, "the refused call and its clean-up end", func() bool { return down.Finished() == calls() && calls() >= 1 })
	before := calls()
	round("b")
	round("c")
	if n := calls() - before; n != 0 {
		t.Fatalf("the refusing node received %d calls, want none within a second of the refusal", n)
	}
	mu.Lock()
	for _, err := range errs {
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("node error %v does not match ECONNREFUSED", err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("node error %v matches context.DeadlineExceeded: no call timed out", err)
		}
	}
	reported := len(errs)
	mu.Unlock()
	if reported == 0 {
		t.Error("no node error reported for the refusing node")
	}

	down.Fail(nil)
	c.clock.Advance(time.Second)
	round("d") // its acquire call probes the node, which answers
	eventually(t, "the probe reaches the node", func() bool { return calls() > before })
	eventually(t, "the probe and its release end", func() bool { return down.Finished() == calls() })
	before = calls()
	round("e")
	eventually(t, "the node is asked again", func() bool { return calls() >= before+2 })
}

// A call that runs out the node timeout does not pause a node that has
// answered a call sent after it: the node works, and what failed was that
// call's way to it (a connection made while the node restarted, say).
func TestTimeoutDoesNotPauseANodeThatAnsweredSince(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker(redlock.WithNodeTimeout(100*time.Millisecond), redlock.WithBackoff(redlock.NoRetry()))
	node := c.nodes[2]
	calls := func() int { n, _ := node.Calls(); return n }
	round := func(name string) { t.Helper(); tryRound(t, lk, name) }
	node.HangNext(1)
	round("a") // its call to node 2 is lost
	eventually(t, "a's call reaches the node", func() bool { return calls() == 1 })
	c.clock.Advance(10 * time.Millisecond)
	round("b") // sent later, answered
	eventually(t, "b's calls are answered", func() bool { return node.Finished() == 2 })
	c.clock.Advance(90 * time.Millisecond)
	// a's call runs out the node timeout, and its clean-up is sent at once,
	// the node not being paused.
	eventually(t, "a's call runs out the node timeout and is cleaned up", func() bool { return node.Finished() == 4 })

	before := calls()
	round("c")
	if calls() == before {
		t.Fatal("the node was not asked: the lost call paused it although it had answered a later one")
	}
}

// A call refused at connect never reached its node: nothing is cleaned up
// there, and no release is owed to it.
func TestRefusedCallOwesNoRelease(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker(redlock.WithBackoff(redlock.NoRetry()))
	down := c.nodes[2]
	down.Fail(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	tryRound(t, lk, "a")
	// The release skipped the paused node: had it been owed, a timer would
	// now wait for the end of the node's pause, a second away.
	if next, ok := c.clock.NextDeadline(); ok && next.Sub(c.clock.Now()) > 900*time.Millisecond {
		t.Fatalf("a timer is set %v ahead: a release is owed to the node whose connection was refused", next.Sub(c.clock.Now()))
	}
}

// A timeout noticed long after it fell due is this client's stall, not the
// node's: a process stopped (SIGSTOP, a debugger) while its calls waited
// finds them all timed out when it resumes, and must not then skip every
// node for a second. Here the clock jumps past the node timeout in one step,
// as a stopped process's clock does; a node whose timeout is noticed in
// time is paused (TestTimedOutNodeIsSkippedThenProbed).
func TestTimeoutNoticedLateDoesNotPauseTheNode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		step   time.Duration // how far the clock moves past the call
		paused bool
	}{
		{"noticed in time", 100 * time.Millisecond, true},
		{"noticed after a stall", 5 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3)
			lk := c.locker(redlock.WithNodeTimeout(100*time.Millisecond), redlock.WithBackoff(redlock.NoRetry()))
			node := c.nodes[2]
			calls := func() int { n, _ := node.Calls(); return n }
			node.HangNext(1)
			tryRound(t, lk, "a") // its call to node 2 hangs
			eventually(t, "a's call reaches the node", func() bool { return calls() == 1 })
			c.clock.Advance(tc.step)
			eventually(t, "a's call runs out the node timeout", func() bool { return node.Finished() >= 1 })
			// A paused node owes its clean-up until the pause ends; one
			// that is not paused gets it at once.
			if !tc.paused {
				eventually(t, "a's clean-up reaches the node", func() bool { return node.Finished() == 2 })
			}
			before := calls()
			tryRound(t, lk, "b")
			if asked := calls() > before; asked == tc.paused {
				t.Fatalf("node asked after the timeout: %v, want %v", asked, !tc.paused)
			}
		})
	}
}
