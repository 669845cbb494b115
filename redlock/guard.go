package redlock

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumlock/quorumlock/internal/scripts"
)

// guard watches each node for the two faults Redlock cannot survive on its
// own — a node that lost its keys (restarted without persistence, flushed)
// and a node whose clock jumped — and discards the node's yes-votes for a
// quarantine period after either. It reads what every granted acquire reply
// carries anyway (the age of the node's boot marker, by the node's clock),
// so it costs no round trip.
type guard struct {
	lk      *Locker
	origin  time.Time // client clock reference for offsets
	nodes   []nodeGuard
	longest atomic.Int64 // largest TTL used by this Locker, in ns
}

type nodeGuard struct {
	// latency is an average of the node's answer times, in ns (atomic);
	// answers counts the answers it averages.
	latency atomic.Int64
	answers atomic.Int64

	mu sync.Mutex
	// born estimates, on the client's clock, when the node last found itself
	// without data; zero until the node first answered. seen is when its
	// last acquire reply was read.
	born time.Time
	seen time.Time
	// until is the end of the node's quarantine; reason says why.
	until  time.Time
	reason string
	// The first sample of (boot marker age - client clock) and its
	// uncertainty.
	based      bool
	baseOffset time.Duration
	baseAt     time.Time
	baseErr    time.Duration
}

// rebirthSlack is how far a node's estimated birth may move, beyond the
// reply's latency, without counting as a new birth.
const rebirthSlack = 20 * time.Millisecond

func newGuard(lk *Locker) *guard {
	return &guard{lk: lk, origin: lk.cfg.clock.Now(), nodes: make([]nodeGuard, len(lk.nodes))}
}

// observe folds a successful answer's latency into node i's average; the
// first answer starts it.
func (g *guard) observe(i int, d time.Duration) {
	ng := &g.nodes[i]
	if ng.answers.Add(1) == 1 {
		ng.latency.Store(int64(d))
		return
	}
	old := ng.latency.Load()
	ng.latency.Store(old + (int64(d)-old)/8)
}

// quarantined reports whether node i's yes-votes are being discarded at at.
func (g *guard) quarantined(i int, at time.Time) bool {
	ng := &g.nodes[i]
	ng.mu.Lock()
	defer ng.mu.Unlock()
	return at.Before(ng.until)
}

// slowest returns the largest of the nodes' average latencies.
func (g *guard) slowest() time.Duration {
	var m int64
	for i := range g.nodes {
		m = max(m, g.nodes[i].latency.Load())
	}
	return time.Duration(m)
}

// used records a TTL this Locker obtains a lock for.
func (g *guard) used(ttl time.Duration) {
	for {
		cur := g.longest.Load()
		if int64(ttl) <= cur || g.longest.CompareAndSwap(cur, int64(ttl)) {
			return
		}
	}
}

// period is how long a node stays quarantined: WithQuarantine's value, else
// the largest TTL this Locker has used.
func (g *guard) period() time.Duration {
	if q := g.lk.cfg.quarantine; q > 0 {
		return q
	}
	return time.Duration(g.longest.Load())
}

// judge reads the health signals of node i's acquire reply, received at at
// after latency, and returns why its yes-vote must be discarded ("" to count
// it).
func (g *guard) judge(i int, r scripts.AcquireReply, at time.Time, latency time.Duration) string {
	q := g.period()
	ng := &g.nodes[i]
	ng.mu.Lock()
	events := g.watch(i, ng, time.Duration(r.MarkerAgeMs)*time.Millisecond, at, latency, q)
	reason := ""
	if at.Before(ng.until) {
		reason = fmt.Sprintf("quarantined for %v more: %s", ng.until.Sub(at).Round(time.Millisecond), ng.reason)
	}
	ng.mu.Unlock()
	if reason == "" {
		reason = g.wiped(i, at, q)
	}
	for _, e := range events {
		g.lk.emit(e)
	}
	return reason
}

// watch reads the age of node i's boot marker, as the node's clock gave it
// at the moment at, within latency, and quarantines the node for q if it
// lost its data or its clock jumped; ng.mu is held. It returns the events
// to report.
//
// The age is the node's clock minus the marker's birth, both by the node's
// clock. A birth later than the last reply means a new marker: the node
// lost its data since. Otherwise the age must keep pace with this client's
// clock, within the drift allowance: running ahead or falling back, the
// node's clock jumped.
func (g *guard) watch(i int, ng *nodeGuard, age time.Duration, at time.Time, latency, q time.Duration) []Event {
	cfg := &g.lk.cfg
	var events []Event
	born := at.Add(-age)
	// The estimate of the birth moves with each reply's latency: only a
	// move well beyond that, to after the last reply was read, is a new
	// birth.
	reborn := !ng.born.IsZero() && born.Sub(ng.born) > latency+rebirthSlack && born.After(ng.seen.Add(-rebirthSlack))
	ng.seen = at
	if ng.born.IsZero() || reborn {
		ng.born = born
	}
	if reborn && !cfg.noRestartGuard {
		// This Locker knew the node before: it lost its data since,
		// whatever the other nodes did (a rolling restart is no new
		// cluster), so its votes wait out the quarantine.
		if ng.quarantine(born.Add(q), "node lost its data (restart without persistence, or flushed)") {
			events = append(events, Event{Kind: EventQuarantined, Node: g.lk.nodes[i].Addr(), Detail: ng.reason})
		}
	}
	if cfg.noClockGuard {
		return events
	}
	offset := age - at.Sub(g.origin)
	// The node read its clock somewhere within the round trip, to the
	// millisecond.
	uncertainty := latency + time.Millisecond
	if !ng.based || reborn {
		// A new marker starts a new reading.
		ng.based, ng.baseOffset, ng.baseAt, ng.baseErr = true, offset, at, uncertainty
		return events
	}
	moved := offset - ng.baseOffset
	allowed := time.Duration(float64(at.Sub(ng.baseAt))*cfg.driftFactor) + uncertainty + ng.baseErr + driftFloor
	if moved > allowed || -moved > allowed {
		ng.baseOffset, ng.baseAt, ng.baseErr = offset, at, uncertainty
		if ng.quarantine(at.Add(q), fmt.Sprintf("node clock jumped by %v", moved.Round(time.Millisecond))) {
			events = append(events, Event{Kind: EventClockJump, Node: g.lk.nodes[i].Addr(), Detail: ng.reason})
		}
	}
	return events
}

// wiped returns why node i's votes must not count because it lost its data
// less than q ago while the cluster did not: some node that answered has kept
// its data for longer, and fewer than a quorum are as fresh. When a quorum
// of nodes is fresh the whole cluster started anew; quarantine cannot protect
// that case (no node remembers the locks) and refusing every vote would only
// make a new cluster unusable.
func (g *guard) wiped(i int, at time.Time, q time.Duration) string {
	if g.lk.cfg.noRestartGuard {
		return ""
	}
	fresh, old := 0, 0
	var age time.Duration
	for j := range g.nodes {
		o := &g.nodes[j]
		o.mu.Lock()
		switch {
		case o.born.IsZero():
		case at.Sub(o.born) < q:
			fresh++
		default:
			old++
		}
		if j == i {
			age = at.Sub(o.born)
			if o.born.IsZero() || age >= q {
				o.mu.Unlock()
				return ""
			}
		}
		o.mu.Unlock()
	}
	if old == 0 || fresh >= g.lk.quorum {
		return ""
	}
	return fmt.Sprintf("quarantined for %v more: node lost its data %v ago (restart without persistence, or flushed)",
		(q - age).Round(time.Millisecond), age.Round(time.Millisecond))
}

// recheck judges the round's yes-votes again with what the round has learnt
// since they arrived, discards those of wiped nodes, and returns how many.
func (g *guard) recheck(name string, rd *round, at time.Time) int {
	q := g.period()
	dropped := 0
	for i := range rd.votes {
		v := &rd.votes[i]
		if !v.Answered || !v.Yes || v.Err != nil {
			continue
		}
		if why := g.wiped(i, at, q); why != "" {
			v.Yes, v.Discarded = false, why
			rd.tally.Yes--
			rd.tally.Failed++
			dropped++
			g.lk.emit(Event{Kind: EventVoteDiscarded, Name: name, Node: v.Addr, Detail: why})
		}
	}
	return dropped
}

// quarantine extends the node's quarantine to until, and reports whether it
// was not quarantined before (a new event). ng.mu is held.
func (ng *nodeGuard) quarantine(until time.Time, reason string) bool {
	if !until.After(ng.until) {
		return false
	}
	fresh := ng.until.IsZero() || !until.Before(ng.until.Add(time.Second))
	ng.until, ng.reason = until, reason
	return fresh
}

// EventKind says what an Event reports.
type EventKind int

// The kinds of events a Locker reports to its observer.
const (
	EventObtained      EventKind = iota + 1 // a lock was obtained
	EventObtainFailed                       // an attempt failed (held, no quorum, expired)
	EventNodeError                          // a node failed in a round
	EventVoteDiscarded                      // a yes-vote of a quarantined node was not counted
	EventQuarantined                        // a node was found to have lost its data
	EventClockJump                          // a node's clock jumped
	EventExtended                           // a lock was extended (by Extend or KeepAlive)
	EventLost                               // a lock was lost
	EventReleased                           // a lock was released
	EventNodeLagging                        // a node answers far behind the others: new acquisitions spare it
	EventNodeCaughtUp                       // a lagging node answered in time again
)

var eventNames = map[EventKind]string{
	EventObtained: "obtained", EventObtainFailed: "obtain failed", EventNodeError: "node error",
	EventVoteDiscarded: "vote discarded", EventQuarantined: "node quarantined", EventClockJump: "node clock jump",
	EventExtended: "extended", EventLost: "lost", EventReleased: "released",
	EventNodeLagging: "node lagging", EventNodeCaughtUp: "node caught up",
}

func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one thing worth counting or logging that happened in a Locker.
type Event struct {
	Kind    EventKind
	Name    string        // the lock's name, when it concerns one lock
	Node    string        // the node's address, when it concerns one node
	Latency time.Duration // the round's or node's latency, when measured
	Err     error         // the failure, if any
	Detail  string        // a human-readable explanation
}

// emit hands an event to the observer and logs what an operator must see.
func (lk *Locker) emit(e Event) {
	if lk.cfg.observer != nil {
		lk.cfg.observer(e)
	}
	if lk.cfg.logger == nil {
		return
	}
	attrs := []any{"event", e.Kind.String()}
	if e.Name != "" {
		attrs = append(attrs, "lock", e.Name)
	}
	if e.Node != "" {
		attrs = append(attrs, "node", e.Node)
	}
	if e.Detail != "" {
		attrs = append(attrs, "detail", e.Detail)
	}
	if e.Err != nil {
		attrs = append(attrs, "err", e.Err)
	}
	switch e.Kind {
	case EventQuarantined, EventClockJump, EventLost, EventNodeLagging:
		lk.cfg.logger.Warn("redlock: "+e.Kind.String(), attrs...)
	case EventNodeCaughtUp:
		lk.cfg.logger.Info("redlock: "+e.Kind.String(), attrs...)
	case EventNodeError, EventVoteDiscarded:
		lk.cfg.logger.Debug("redlock: "+e.Kind.String(), attrs...)
	}
}
