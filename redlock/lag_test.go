package redlock_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/memnode"
	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/redlock"
)

// A node whose answers come far behind the others' is spared by new
// acquisitions while a vote is left to spare; a round that fails for want of
// votes asks it again; once a second, one acquisition probes it, and an
// answer in time ends the lag.
// lagFixture is a 5-node cluster whose fifth node answers delay late once
// slowed, and whose fourth refuses connections: every round then waits for
// the three others, and none of their answers is read after the test moves
// the clock on for the slow node (which would count as their latency). The
// fourth still counts as a vote to spare: errors do not pause a node,
// timeouts do.
type lagFixture struct {
	t                 *testing.T
	c                 *cluster
	lk                *redlock.Locker
	slow              *memnode.Node
	counted           *probe
	lagging, caughtUp chan struct{}
	quarantined       chan string // addresses of nodes found wiped
}

const lagDelay = 20 * time.Millisecond

var errRefused = errors.New("connection refused")

func newLagFixture(t *testing.T) *lagFixture {
	f := &lagFixture{t: t, c: newCluster(t, 5), lagging: make(chan struct{}, 8), caughtUp: make(chan struct{}, 8), quarantined: make(chan string, 8)}
	f.slow = f.c.nodes[4]
	f.c.nodes[3].Fail(errRefused)
	f.counted = newProbe(f.slow)
	pools := f.c.pools()
	pools[4] = f.counted
	// The node timeout is longer than the test's moves of the clock: a
	// call whose goroutine starts after a move must not time out.
	f.lk = newLocker(t, f.c.clock, pools, redlock.WithNodeTimeout(5*time.Second), redlock.WithBackoff(redlock.NoRetry()), redlock.WithObserver(func(e redlock.Event) {
		// Never block the Locker: the buffers outlast what the tests wait for.
		switch {
		case e.Kind == redlock.EventQuarantined:
			sendNow(f.quarantined, e.Node)
		case e.Node != f.slow.Addr():
		case e.Kind == redlock.EventNodeLagging:
			sendNow(f.lagging, struct{}{})
		case e.Kind == redlock.EventNodeCaughtUp:
			sendNow(f.caughtUp, struct{}{})
		}
	}))
	return f
}

// sendNow sends v on ch unless its buffer is full.
func sendNow[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// calls counts the calls the slow node received; asked, the acquisitions
// that asked it (a round's clean-up may reach it after the next began).
func (f *lagFixture) calls() int { n, _ := f.slow.Calls(); return n }
func (f *lagFixture) asked() int { return f.counted.count(scripts.Acquire.Name) }

// drain lets every call the slow node received finish, moving the clock on
// to the end of each one's delay once it waits for it.
func (f *lagFixture) drain() {
	f.t.Helper()
	eventually(f.t, "the slow node's calls finish", func() bool {
		if f.slow.Finished() == f.calls() {
			return true
		}
		if at, ok := f.c.clock.NextDeadline(); ok && at.Sub(f.c.clock.Now()) <= lagDelay {
			f.c.clock.Set(at)
		}
		return false
	})
}

// round obtains and releases name without the slow node's vote.
func (f *lagFixture) round(name string) {
	f.t.Helper()
	tryRound(f.t, f.lk, name)
	f.drain()
}

// slowRound obtains and releases name with the slow node's vote: each call
// waits for it.
func (f *lagFixture) slowRound(name string) {
	f.t.Helper()
	received := f.calls()
	res := start(func() (*redlock.Lock, error) { return f.lk.TryObtain(context.Background(), name, time.Minute) })
	eventually(f.t, "the lagging node is asked", func() bool { return f.calls() > received })
	f.drain()
	r := recv(f.t, "the attempt that asks the lagging node", res)
	if r.err != nil {
		f.t.Fatalf("TryObtain(%s) with the lagging node asked: %v", name, r.err)
	}
	received = f.calls()
	released := make(chan error, 1)
	go func() { released <- r.lock.Release(context.Background()) }()
	eventually(f.t, "the release reaches the lagging node", func() bool { return f.calls() > received })
	f.drain()
	if err := recv(f.t, "the release", released); err != nil {
		f.t.Fatalf("Release(%s): %v", name, err)
	}
}

// untilLagging slows the node and makes rounds until its average has
// climbed past the bar, one slow answer at a time. A round's answers are
// read once the node has sent them: the wait for the event is a bound, not
// a pause (a round that does not make the node lag waits it out, which
// takes a few of them).
func (f *lagFixture) untilLagging() {
	f.t.Helper()
	f.slow.SetDelay(lagDelay)
	for range 20 {
		f.round("a")
		select {
		case <-f.lagging:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	f.t.Fatal("the node was never found lagging")
}

// A node whose answers come far behind the others' is spared by new
// acquisitions while a vote is left to spare; once a second, one acquisition
// probes it, and an answer in time ends the lag; a round that fails for want
// of votes asks it again.
func TestLaggingNodeIsSpared(t *testing.T) {
	f := newLagFixture(t)
	c, lk, slow := f.c, f.lk, f.slow
	asked, round := f.asked, f.round
	round("warm-up") // every node answers at once: its average starts there
	f.untilLagging()
	// A round's call to the fifth node may be made after the round ended:
	// the one that found the node lagging may count late, once.
	before := asked()
	for range 5 {
		round("b")
	}
	if n := asked() - before; n > 1 {
		t.Fatalf("the lagging node was asked %d times in 5 rounds, want none", n)
	}

	// The delay ends, but only a probe can tell.
	slow.SetDelay(0)
	for range 3 {
		round("c")
	}
	if n := asked() - before; n > 1 {
		t.Fatalf("the lagging node was asked %d times before its probe, want none", n)
	}
	c.clock.Advance(time.Second)
	before = asked()
	round("d") // the probe: asked, and answered at once
	recv(t, "the node catches up", f.caughtUp)
	round("e")
	eventually(t, "the node is asked again", func() bool { return asked()-before >= 2 })

	// Lagging again, when a second node fails: a round falls short of a
	// quorum without the lagging node, and the next one asks it.
	f.untilLagging()
	c.nodes[2].Fail(errRefused)
	var sent [2]int
	for i := range sent {
		sent[i], _ = c.nodes[i].Calls()
	}
	if _, err := lk.TryObtain(context.Background(), "f", time.Minute); !errors.Is(err, redlock.ErrNoQuorum) {
		t.Fatalf("TryObtain with 2 nodes failing and 1 spared = %v, want ErrNoQuorum", err)
	}
	// The round failed before the two healthy nodes answered; each is
	// cleaned up once it has.
	eventually(t, "the failed attempt's clean-up", func() bool {
		for i, n := range sent {
			if got, _ := c.nodes[i].Calls(); got < n+2 || c.nodes[i].Finished() < got {
				return false
			}
		}
		return true
	})
	before = asked()
	f.slowRound("f")
	if n := asked() - before; n != 1 {
		t.Fatalf("the lagging node was asked %d times, want once", n)
	}
}

// A node whose votes do not count (quarantined: it lost its data) is no vote
// to spare either: with one, the lagging node is asked.
func TestQuarantinedNodeIsNoVoteToSpare(t *testing.T) {
	f := newLagFixture(t)
	f.round("warm-up")
	f.untilLagging()
	// The fourth node answers again and the third loses its data: a round
	// without the lagging node still makes a quorum, and finds the third
	// node wiped.
	f.c.nodes[3].Fail(nil)
	f.c.nodes[2].Flush()
	f.round("w")
	if addr := recv(t, "the wiped node is quarantined", f.quarantined); addr != f.c.nodes[2].Addr() {
		t.Fatalf("quarantined %s, want the wiped node %s", addr, f.c.nodes[2].Addr())
	}
	before := f.asked()
	// With the fourth node refusing again, the quarantined one is no vote
	// to spare: the lagging node is asked, and the round makes a quorum.
	f.c.nodes[3].Fail(errRefused)
	f.slowRound("q")
	if n := f.asked() - before; n != 1 {
		t.Fatalf("the lagging node was asked %d times, want once", n)
	}
}

// A node that answers nothing is spared once it has many more calls in
// flight than the others, without waiting for the first of them to time
// out; once they end, it is asked again.
func TestBackedUpNodeIsSpared(t *testing.T) {
	c := newCluster(t, 5)
	lk := c.locker(redlock.WithBackoff(redlock.NoRetry()))
	hung := c.nodes[4]
	calls := func() int { n, _ := hung.Calls(); return n }
	round := func(name string) { t.Helper(); tryRound(t, lk, name) }
	hung.Hang()
	// A round ends before its calls to the hung node and to a fourth node
	// are made or answered. Each round waits for the others' calls to end,
	// so that only the hung node has calls in flight (this test's rounds
	// never block, and could starve those goroutines), and for its call to
	// the hung node, until one is not made. A call is counted while sent,
	// so the node is spared from the call past backlogFloor on.
	const backlogFloor = 16
	spared := false
	for i := range 40 {
		before := calls()
		round(fmt.Sprintf("r%d", i))
		eventually(t, "the other nodes' calls end", func() bool {
			for _, n := range c.nodes[:4] {
				if got, _ := n.Calls(); n.Finished() < got {
					return false
				}
			}
			return true
		})
		if spared {
			continue
		}
		arrived := false
		for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
			if arrived = calls() > before; arrived {
				break
			}
		}
		spared = !arrived
	}
	if n := calls(); !spared || n != backlogFloor+1 {
		t.Fatalf("the hung node received %d calls in 40 rounds (spared: %v), want %d", n, spared, backlogFloor+1)
	}
	// It answers: its calls end, and it is asked again.
	hung.Unhang()
	eventually(t, "the hung node's calls end", func() bool { return hung.Finished() == calls() })
	before := calls()
	round("again")
	eventually(t, "the node is asked again", func() bool { return calls() > before })
}
