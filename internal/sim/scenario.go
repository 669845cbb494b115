// Package sim is a deterministic, seeded simulation of Redlock: real
// redlock.Lockers (one per simulated client process) over in-memory nodes
// (internal/memnode) that run the lock scripts' semantics in Go, with every
// fault decided by a seed and timed on one fake clock.
//
// A Scenario says which faults may happen: message delay and loss, node
// crashes and restarts with or without their data, per-node clock drift and
// jumps, client pauses and crashes. Run plays one seed of a scenario and
// returns the recorded critical sections with the verdict of the shared
// checker (internal/history): no two holders of a name overlap within their
// validity, and fencing tokens, when the Lock carries them, increase in the
// order sections start.
//
// The schedule is a pure function of the seed: every fault, delay, pause and
// its fake-clock instant, each actor drawing from its own stream. Run must be
// called inside a testing/synctest bubble, whose Wait tells the driver when
// every goroutine has gone idle before it moves the clock. The coordinator's
// goroutines still run for real, so events due at the very same instant may
// interleave differently from run to run; instants are drawn with nanosecond
// resolution to make such ties rare. Replaying a seed is exact except where
// the coordinator draws randomness of its own (its pause after a split vote
// uses math/rand): from there on a replay can diverge. No verdict depends on
// the interleaving: mutual exclusion must hold in all of them.
package sim

import (
	"time"

	"github.com/quorumlock/quorumlock/redlock"
)

// Range is a closed interval of durations; a value is drawn uniformly from
// it. The zero Range always yields 0.
type Range struct{ Min, Max time.Duration }

// Scenario is the set of faults one run may inject and the workload the
// clients put on the lock.
type Scenario struct {
	// Name identifies the scenario in reports and replay commands.
	Name string

	// Nodes lists the possible cluster sizes; each seed picks one.
	Nodes []int
	// Clients is how many client processes contend, each with its own
	// Locker.
	Clients int
	// Names is how many lock names they contend for.
	Names int
	// Horizon is how long, in simulated time, the clients keep working.
	Horizon time.Duration
	// TTL is the range each Obtain's TTL is drawn from.
	TTL Range

	Network Network
	Crash   Crash
	Clock   Clocks
	Client  Client

	// FencedP is the probability that a seed's Lockers are built
	// WithFencing, so that every Lock carries a fencing token and the
	// checker verifies their order.
	FencedP float64
	// FencedLoss lets the nodes of a fenced run lose their data in a crash
	// as Crash says. Otherwise they always keep it: a node that loses its
	// fence counter lets a later holder draw a smaller token, however long
	// the node stays down before it restarts.
	FencedLoss bool
	// UnguardedP is the probability that a seed's Lockers run with the
	// restart quarantine and clock-jump detection off: Redlock as published.
	UnguardedP float64
	// Options are added to every Locker's options after the simulation's
	// own (clock, backoff, fencing, guards).
	Options []redlock.Option
}

// Network is how messages between clients and nodes are delayed and lost.
// Each message, each way, is delayed independently.
type Network struct {
	// Delay is the ordinary one-way delay of every message.
	Delay Range
	// SlowP is the probability that a message is slow instead, delayed by
	// Slow (possibly past the coordinator's per-node timeout).
	SlowP float64
	Slow  Range
	// LossP is the probability that a call loses a message: half of the
	// time the request (the node never applies it), half of the time the
	// reply (the node applied it). The caller waits for its timeout.
	LossP float64
}

// Crash is how nodes crash and restart.
type Crash struct {
	// Every is the time between one node's restart and its next crash
	// (zero: nodes never crash).
	Every Range
	// Down is how long a crashed node stays down when it keeps its data.
	Down Range
	// PersistP is the probability that a node keeps its keys over a crash
	// (AOF with fsync always). Otherwise it restarts empty.
	PersistP float64
	// EmptyDown is how long a node that lost its keys stays down. Redlock
	// assumes it is longer than any TTL ("delayed restart").
	EmptyDown Range
}

// Clocks is how the nodes' clocks drift and jump away from true time. The
// clients keep true time: what matters to Redlock is the difference.
type Clocks struct {
	// Rate is the range each node's clock rate is drawn from (1: true
	// time; 1.01: 1% fast). A node clock that runs fast expires keys early.
	Rate [2]float64
	// JumpEvery is the time between one node's clock jumps (zero: none).
	JumpEvery Range
	// Forward is the size of a forward jump; BackP is the probability that
	// a jump goes back instead, by Back.
	Forward Range
	BackP   float64
	Back    Range
}

// Client is how the client processes behave.
type Client struct {
	// Think is the wait between one critical section and the next attempt.
	Think Range
	// Writes is the range of how many writes a holder makes to the shared
	// store, Step apart.
	Writes [2]int
	Step   Range
	// PauseP is the probability that a holder stops for Pause between
	// obtaining the lock and acting (a GC pause, a page fault, a stopped
	// VM).
	PauseP float64
	Pause  Range
	// Reckless holders write after a pause without looking at the lock's
	// remaining validity. Careful ones (the default) stop once TTL() is
	// zero.
	Reckless bool
	// ExtendP is the probability that a careful holder extends its lock
	// before a write once less than half its TTL remains.
	ExtendP float64
	// KeepAliveP is the probability that a careful holder has its lock
	// renewed in the background (Lock.KeepAlive, for half to three times
	// its TTL) and acts while the lock's Context is live, as Locker.Do's
	// callers do, making up to KeepAliveWrites writes.
	KeepAliveP      float64
	KeepAliveWrites [2]int
	// CrashP is the probability that a holder crashes instead of acting:
	// it never releases, and its process is back after CrashDown.
	CrashP    float64
	CrashDown Range
}

// maxTTL is the longest TTL any client asks for.
func (s Scenario) maxTTL() time.Duration { return s.TTL.Max }

// ms is a millisecond, for the scenarios' figures.
const ms = time.Millisecond

// WithinAssumptions returns a scenario with every fault Redlock tolerates,
// each pushed to the edge of what it assumes: node clocks up to 0.8% fast or
// slow (under the default 1% drift factor), rare forward jumps of at most 1ms
// and back jumps of up to 100ms (safe, but the clock guard quarantines the
// node); crashes that keep the data or keep
// the node down longer than any TTL (fenced runs always keep it); delayed,
// slow and lost messages; holders that pause, even past their validity, but
// check it before acting; holders that crash; extensions by hand and by
// KeepAlive. Half the seeds fence their locks; half run with the
// coordinator's restart and clock-jump guards off.
func WithinAssumptions() Scenario {
	const maxTTL = 1200 * ms
	return Scenario{
		Name:       "within-assumptions",
		Nodes:      []int{3, 5},
		Clients:    3,
		Names:      1,
		Horizon:    3000 * ms,
		TTL:        Range{150 * ms, maxTTL},
		FencedP:    0.5,
		UnguardedP: 0.5,
		Network: Network{
			Delay: Range{50 * time.Microsecond, 3 * ms},
			SlowP: 0.03,
			Slow:  Range{5 * ms, 300 * ms},
			LossP: 0.02,
		},
		Crash: Crash{
			Every:     Range{500 * ms, 6000 * ms},
			Down:      Range{0, 1000 * ms},
			PersistP:  0.5,
			EmptyDown: Range{maxTTL + ms, 2 * maxTTL},
		},
		Clock: Clocks{
			Rate:      [2]float64{0.992, 1.008},
			JumpEvery: Range{maxTTL, 4 * maxTTL},
			Forward:   Range{0, ms},
			BackP:     0.5,
			Back:      Range{0, 100 * ms},
		},
		Client: Client{
			Think:           Range{0, 100 * ms},
			Writes:          [2]int{1, 5},
			Step:            Range{5 * ms, 200 * ms},
			PauseP:          0.15,
			Pause:           Range{5 * ms, 1500 * ms},
			ExtendP:         0.5,
			KeepAliveP:      0.25,
			KeepAliveWrites: [2]int{5, 20},
			CrashP:          0.05,
			CrashDown:       Range{0, 500 * ms},
		},
	}
}

// RestartWithoutPersistence breaks the persistence assumption: nodes crash
// and come back at once with no keys, each one every one to three seconds.
// Everything else stays within the assumptions (and clocks keep true time).
// The restart quarantine is off: this is Redlock as published.
func RestartWithoutPersistence() Scenario {
	s := quiet("restart-without-persistence")
	s.Crash = Crash{Every: Range{1000 * ms, 3000 * ms}, EmptyDown: Range{0, ms}}
	s.Options = []redlock.Option{redlock.WithoutRestartQuarantine()}
	return s
}

// ClockJumpForward breaks the bounded-drift assumption with jumps: node
// clocks step forward by far more than the drift allowance. Clock-jump
// detection is off.
func ClockJumpForward() Scenario {
	s := quiet("clock-jump-forward")
	s.Clock = Clocks{Rate: [2]float64{1, 1}, JumpEvery: Range{100 * ms, 1000 * ms}, Forward: Range{100 * ms, 1000 * ms}}
	s.Options = []redlock.Option{redlock.WithoutClockJumpDetection()}
	return s
}

// FastClock breaks the bounded-drift assumption with rates: node clocks run
// 5% to 10% fast, beyond the 1% drift factor. Clock-jump detection is off.
func FastClock() Scenario {
	s := quiet("fast-clock")
	s.Clock = Clocks{Rate: [2]float64{1.05, 1.10}}
	s.Options = []redlock.Option{redlock.WithoutClockJumpDetection()}
	return s
}

// PauseBeyondValidity keeps the lock within its assumptions but not the
// clients: holders often pause for longer than their validity and then write
// without checking it, which no lock without fencing can make safe.
func PauseBeyondValidity() Scenario {
	s := quiet("pause-beyond-validity")
	s.Client.PauseP = 0.3
	s.Client.Pause = Range{250 * ms, 2000 * ms}
	s.Client.Reckless = true
	return s
}

// FenceCounterLoss breaks the persistence assumption of fencing only:
// nodes restart without their data, but stay down longer than any TTL, so the
// locks stay exclusive while the fence counters start again from zero. The
// restart quarantine is off.
func FenceCounterLoss() Scenario {
	s := quiet("fence-counter-loss")
	s.FencedP, s.FencedLoss = 1, true
	s.Crash = Crash{Every: Range{250 * ms, 1250 * ms}, EmptyDown: Range{s.TTL.Max + ms, 2 * s.TTL.Max}}
	s.Options = []redlock.Option{redlock.WithoutRestartQuarantine()}
	return s
}

// Guarded returns s with the coordinator's restart and clock-jump guards
// back on (the defaults), to see how much of what s breaks they prevent.
func Guarded(s Scenario) Scenario {
	s.Name += "-guarded"
	s.Options = nil
	return s
}

// quiet is a scenario with contention and ordinary network delays but no
// fault, the base the out-of-assumption scenarios add their one fault to.
func quiet(name string) Scenario {
	return Scenario{
		Name:    name,
		Nodes:   []int{3, 5},
		Clients: 3,
		Names:   1,
		Horizon: 3000 * ms,
		TTL:     Range{150 * ms, 1000 * ms},
		Network: Network{Delay: Range{50 * time.Microsecond, 3 * ms}},
		Clock:   Clocks{Rate: [2]float64{1, 1}},
		Client: Client{
			Think:  Range{0, 100 * ms},
			Writes: [2]int{1, 5},
			Step:   Range{5 * ms, 200 * ms},
		},
	}
}
