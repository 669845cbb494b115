package redlock

import (
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"
)

// A node that answers, but far behind the others (a bad link, an overloaded
// server), never counts toward a round's decision: the quorum is made by the
// faster nodes before its answer comes. Asking it anyway costs every round a
// goroutine and a connection held for as long as it takes, and a clean-up
// call after the round gave up on it. So a new acquisition spares a lagging
// node while enough others are asked to leave one vote to spare: then it
// costs nothing, not even a vote, unless a second node fails in the same
// round (and a round that fails for want of votes asks it again next time).
// Once every lagProbe one acquisition asks it anyway: an answer within the
// bar ends the lag at once.
//
// A node can also fall behind before any late answer tells: a hung node
// answers nothing until the node timeout, while every round leaves it one
// more call. So a node with many more calls in flight than the quorum's
// nodes (backlogFactor times the quorum-th smallest backlog, and at least
// backlogFloor) is spared the same way, for as long as its backlog lasts:
// its own calls, when they end, are the probe. A call counts while it is
// sent, not from its launch: a goroutine the scheduler has not run yet says
// nothing about the node.
//
// Only acquisitions spare a lagging node. Releases and extensions go to every
// node that may hold the key, so that no key outlives its lock for want of a
// call.

// A node lags when its average latency exceeds lagFactor times the latency
// of the quorum's slowest member (the node whose answer usually decides a
// round) and lagFloor both.
const (
	lagFactor = 4
	lagFloor  = 5 * time.Millisecond
	lagProbe  = time.Second
)

// A node is backed up when its calls in flight exceed backlogFactor times
// the quorum-th smallest count among the nodes, and backlogFloor.
const (
	backlogFactor = 4
	backlogFloor  = 16
)

// lagMinAnswers is how many answers a node's average must hold before it
// can lag: its first answers usually waited for connections to be dialled.
const lagMinAnswers = 8

// lagMaxNodes bounds the clusters whose nodes are ranked for lag: larger
// ones (never seen in practice) are always asked in full.
const lagMaxNodes = 16

// lag is one node's standing behind the others.
type lag struct {
	lagging  atomic.Bool
	probeAt  atomic.Int64 // next probe, ns since the Locker's start
	inflight atomic.Int32 // calls sent and not yet answered
}

// noteLatency records a successful answer from node i after d, and whether
// the node now lags.
func (lk *Locker) noteLatency(i int, d time.Duration) {
	lk.guard.observe(i, d)
	if len(lk.nodes) < 3 || len(lk.nodes) > lagMaxNodes {
		return
	}
	bar := lk.lagBar()
	s := &lk.lags[i]
	avg := time.Duration(lk.guard.nodes[i].latency.Load())
	switch {
	case s.lagging.Load() && d <= bar:
		// A probe answered in time: the node is back, and its average
		// restarts from this answer rather than climbing down slowly.
		lk.guard.nodes[i].latency.Store(int64(d))
		if s.lagging.CompareAndSwap(true, false) {
			lk.emit(Event{Kind: EventNodeCaughtUp, Node: lk.nodes[i].Addr(), Latency: d})
		}
	case !s.lagging.Load() && avg > bar && lk.guard.nodes[i].answers.Load() >= lagMinAnswers:
		s.probeAt.Store(lk.sinceStart() + int64(lagProbe))
		if s.lagging.CompareAndSwap(false, true) {
			lk.emit(Event{Kind: EventNodeLagging, Node: lk.nodes[i].Addr(), Latency: avg,
				Detail: fmt.Sprintf("answers in %v on average, over %v: new acquisitions leave it out while a vote is to spare, and probe it every %v", avg.Round(time.Microsecond), bar.Round(time.Microsecond), lagProbe)})
		}
	}
}

// lagBar is the average latency above which a node lags: lagFactor times the
// quorum-th smallest average, and at least lagFloor.
func (lk *Locker) lagBar() time.Duration {
	var avgs [lagMaxNodes]int64
	n := len(lk.nodes)
	for i := range n {
		v := lk.guard.nodes[i].latency.Load()
		j := i
		for ; j > 0 && avgs[j-1] > v; j-- {
			avgs[j] = avgs[j-1]
		}
		avgs[j] = v
	}
	return max(lagFactor*time.Duration(avgs[lk.quorum-1]), lagFloor)
}

// spare reports whether a new acquisition is to leave node i out because it
// lags: only while the nodes whose votes count (askable), less the other
// nodes the acquisition spares, number a quorum and one more, and not when
// it is time to probe it.
func (lk *Locker) spare(i, spared int) bool {
	s := &lk.lags[i]
	if len(lk.nodes) < 3 || len(lk.nodes) > lagMaxNodes {
		return false
	}
	bar := lk.backlogBar()
	backedUp := s.inflight.Load() > bar
	if !backedUp && !s.lagging.Load() {
		return false
	}
	if bits.OnesCount64(lk.askableBelow(bar))-spared <= lk.quorum {
		return false
	}
	now := lk.sinceStart()
	if backedUp {
		return true
	}
	next := s.probeAt.Load()
	return now < next || !s.probeAt.CompareAndSwap(next, now+int64(lagProbe))
}

// askable returns, as a bit set, the nodes a new acquisition would ask:
// neither lagging, nor backed up, nor paused for a timeout, nor quarantined.
// It is empty for clusters whose nodes are not ranked (lagMaxNodes).
func (lk *Locker) askable() uint64 {
	if len(lk.nodes) < 3 || len(lk.nodes) > lagMaxNodes {
		return 0
	}
	return lk.askableBelow(lk.backlogBar())
}

// askableBelow is askable with the backlog bar given.
func (lk *Locker) askableBelow(bar int32) uint64 {
	at := lk.cfg.clock.Now()
	now := int64(at.Sub(lk.guard.origin))
	var set uint64
	for j := range lk.nodes {
		l := &lk.lags[j]
		if !l.lagging.Load() && l.inflight.Load() <= bar && !lk.silenced(j, now) && !lk.guard.quarantined(j, at) {
			set |= 1 << j
		}
	}
	return set
}

// backlogBar is the number of calls in flight above which a node is backed
// up: backlogFactor times the quorum-th smallest backlog, at least
// backlogFloor.
func (lk *Locker) backlogBar() int32 {
	var n [lagMaxNodes]int32
	for i := range lk.nodes {
		v := lk.lags[i].inflight.Load()
		j := i
		for ; j > 0 && n[j-1] > v; j-- {
			n[j] = n[j-1]
		}
		n[j] = v
	}
	return max(backlogFactor*n[lk.quorum-1], backlogFloor)
}

// unspare asks node i again from the next acquisition on: a round that
// spared it failed for want of votes.
func (lk *Locker) unspare(i int) {
	lk.lags[i].lagging.Store(false)
}

// errNodeLagging is the failure of a call a new acquisition spared because
// its node lags far behind the others.
type errNodeLagging struct{}

func (errNodeLagging) Error() string {
	return "not asked: its answers come far behind the other nodes'"
}
