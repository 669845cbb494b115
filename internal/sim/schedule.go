package sim

import (
	"fmt"
	"sort"
	"time"
)

// eventKind is what happens to a node at a scheduled instant.
type eventKind int

const (
	evCrash   eventKind = iota // the node stops answering; it loses its keys unless Keep
	evRestart                  // the node answers again
	evJump                     // the node's clock steps by Jump
)

// event is one scheduled node fault.
type event struct {
	At   time.Duration // since the start of the run
	Node int
	Kind eventKind
	Keep bool          // evCrash: the node keeps its keys
	Jump time.Duration // evJump: the step, negative for back
}

func (e event) String() string {
	at := fmt.Sprintf("+%.3fms node%d", float64(e.At)/float64(time.Millisecond), e.Node+1)
	switch e.Kind {
	case evCrash:
		if e.Keep {
			return at + " crashes, keeping its keys"
		}
		return at + " crashes, losing its keys"
	case evRestart:
		return at + " restarts"
	}
	return fmt.Sprintf("%s clock jumps %v", at, e.Jump)
}

// schedule is everything a seed decides about the nodes before the run
// starts: how many there are, how fast each clock runs, and when each one
// crashes, restarts or has its clock stepped.
type schedule struct {
	fenced    bool
	unguarded bool
	nodes     int
	rates     []float64
	events    []event // by At; ties keep node order
}

// newSchedule draws the node faults of one run. Each node draws from its own
// streams, so a change to one node's faults leaves the others' unchanged.
func newSchedule(s Scenario, seed uint64) schedule {
	setup := newRNG(seed, streamSetup, 0, 0)
	n := s.Nodes[setup.intn(0, len(s.Nodes)-1)]
	sc := schedule{fenced: setup.chance(s.FencedP), unguarded: setup.chance(s.UnguardedP), nodes: n, rates: make([]float64, n)}
	for i := 0; i < n; i++ {
		g := newRNG(seed, streamSchedule, i, 0)
		sc.rates[i] = g.float(s.Clock.Rate[0], s.Clock.Rate[1])
		if s.Crash.Every.Max > 0 {
			for t := g.dur(s.Crash.Every); t < s.Horizon; t += g.dur(s.Crash.Every) {
				keep := g.chance(s.Crash.PersistP)
				if sc.fenced && !s.FencedLoss {
					keep = true
				}
				down := s.Crash.EmptyDown
				if keep {
					down = s.Crash.Down
				}
				d := g.dur(down)
				sc.events = append(sc.events,
					event{At: t, Node: i, Kind: evCrash, Keep: keep},
					event{At: t + d, Node: i, Kind: evRestart})
				t += d
			}
		}
		j := newRNG(seed, streamSchedule, i, 1)
		if s.Clock.JumpEvery.Max > 0 {
			for t := j.dur(s.Clock.JumpEvery); t < s.Horizon; t += j.dur(s.Clock.JumpEvery) {
				d := j.dur(s.Clock.Forward)
				if j.chance(s.Clock.BackP) {
					d = -j.dur(s.Clock.Back)
				}
				sc.events = append(sc.events, event{At: t, Node: i, Kind: evJump, Jump: d})
			}
		}
	}
	sort.SliceStable(sc.events, func(a, b int) bool { return sc.events[a].At < sc.events[b].At })
	return sc
}

// describe lists the schedule for a failure report.
func (sc schedule) describe() []string {
	out := make([]string, 0, 1+sc.nodes+len(sc.events))
	out = append(out, fmt.Sprintf("%d nodes, fencing %v, guards %v", sc.nodes, sc.fenced, !sc.unguarded))
	for i, r := range sc.rates {
		out = append(out, fmt.Sprintf("node%d clock rate %.4f", i+1, r))
	}
	for _, e := range sc.events {
		out = append(out, e.String())
	}
	return out
}
