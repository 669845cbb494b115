package sim

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing/synctest"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/history"
	"github.com/quorumlock/quorumlock/internal/memnode"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// errShutdown ends every wait when the run is over.
var errShutdown = errors.New("sim: run is over")

// Outcome is what one run recorded and the checker's verdict on it.
type Outcome struct {
	Scenario string
	Seed     uint64
	// Sections is every critical section, by the time it was acquired.
	Sections []history.Section
	// Lock is history.Check: did two holders overlap within their validity?
	Lock history.Result
	// Acted is history.CheckActed: did two holders act at the same time,
	// counting what they did after their validity ended?
	Acted history.Result
	// Fenced reports that the sections carried fencing tokens.
	Fenced bool
	Stats  Stats
	// Schedule lists the node faults the seed decided, for a report.
	Schedule []string
	// Err is set when the simulation itself went wrong: a Locker could not
	// be built, or the run stopped making progress.
	Err error
}

// OK reports that the run went through and broke no rule: no overlap within
// validity, none in what holders did, no fence out of order, no interleaving
// at the store.
func (o Outcome) OK() bool {
	return o.Err == nil && o.Lock.OK() && o.Acted.OK() && o.Stats.Interleaved == 0
}

// Report describes the outcome: the verdicts, the counts and the schedule.
func (o Outcome) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s, seed %d: %s\n", o.Scenario, o.Seed, o.Stats)
	if o.Err != nil {
		fmt.Fprintf(&b, "simulation error: %v\n", o.Err)
	}
	fmt.Fprintf(&b, "within validity: %v\n", o.Lock)
	fmt.Fprintf(&b, "as acted: %v\n", o.Acted)
	fmt.Fprintf(&b, "store: %d writes accepted, %d rejected, %d interleaved\n", o.Stats.Writes, o.Stats.Rejected, o.Stats.Interleaved)
	b.WriteString("schedule:\n")
	for _, s := range o.Schedule {
		b.WriteString("  " + s + "\n")
	}
	return b.String()
}

// Stats counts what happened in a run, to show that a scenario exercised
// the faults it claims to.
type Stats struct {
	Nodes                             int
	Obtained, Failed, Released        int
	Extended, KeptAlive               int
	Pauses, ClientCrashes             int
	NodeCrashes, EmptyRestarts, Jumps int
	Messages, Lost, Late              int
	Writes, Rejected, Interleaved     int
}

// String puts the counts on one line.
func (s Stats) String() string {
	return fmt.Sprintf("%d nodes; %d obtained, %d failed, %d released, %d extended, %d kept alive; %d pauses, %d client crashes; "+
		"%d node crashes (%d empty), %d clock jumps; %d messages, %d lost, %d landed late",
		s.Nodes, s.Obtained, s.Failed, s.Released, s.Extended, s.KeptAlive, s.Pauses, s.ClientCrashes,
		s.NodeCrashes, s.EmptyRestarts, s.Jumps, s.Messages, s.Lost, s.Late)
}

// Add sums two Stats (Nodes included).
func (s Stats) Add(o Stats) Stats {
	return Stats{
		Nodes:         s.Nodes + o.Nodes,
		Obtained:      s.Obtained + o.Obtained,
		Failed:        s.Failed + o.Failed,
		Released:      s.Released + o.Released,
		Extended:      s.Extended + o.Extended,
		KeptAlive:     s.KeptAlive + o.KeptAlive,
		Pauses:        s.Pauses + o.Pauses,
		ClientCrashes: s.ClientCrashes + o.ClientCrashes,
		NodeCrashes:   s.NodeCrashes + o.NodeCrashes,
		EmptyRestarts: s.EmptyRestarts + o.EmptyRestarts,
		Jumps:         s.Jumps + o.Jumps,
		Messages:      s.Messages + o.Messages,
		Lost:          s.Lost + o.Lost,
		Late:          s.Late + o.Late,
		Writes:        s.Writes + o.Writes,
		Rejected:      s.Rejected + o.Rejected,
		Interleaved:   s.Interleaved + o.Interleaved,
	}
}

// counters are the Stats being counted during a run.
type counters struct {
	obtained, failed, released, extended, keptAlive, pauses, clientCrashes atomic.Int64
	nodeCrashes, emptyRestarts, jumps, messages, lost, late                atomic.Int64
}

// world is one run: true time, the nodes, the record, the store.
type world struct {
	sc    Scenario
	seed  uint64
	clock *clock.Fake
	done  chan struct{} // closed when the run is over
	nodes []*node
	rec   *history.Recorder
	store *store
	stats counters
}

// sleep waits d of simulated time, or until ctx or the run ends.
func (w *world) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := w.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		return errShutdown
	}
}

// waitEnd waits for ctx or the run to end: a lost message is only noticed
// when the caller's timeout fires.
func (w *world) waitEnd(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		return errShutdown
	}
}

// apply makes one scheduled node fault happen.
func (w *world) apply(e event) {
	n := w.nodes[e.Node]
	switch e.Kind {
	case evCrash:
		w.stats.nodeCrashes.Add(1)
		if !e.Keep {
			w.stats.emptyRestarts.Add(1)
		}
		n.crash(e.Keep)
	case evRestart:
		n.restart()
	case evJump:
		w.stats.jumps.Add(1)
		n.clock.Jump(e.Jump)
	}
}

// epoch is the simulated instant every run starts at.
var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Run plays one seed of s and checks what it recorded.
//
// Run must be called inside a testing/synctest bubble (synctest.Test): it
// moves the fake clock from one due timer or fault to the next, and before
// each move it uses synctest.Wait to let every goroutine of the run, the
// coordinator's included, finish what the current instant started. Faults
// due at an instant apply after the timers due at that instant have run.
func Run(s Scenario, seed uint64) Outcome {
	sched := newSchedule(s, seed)
	out := Outcome{Scenario: s.Name, Seed: seed, Schedule: sched.describe()}
	fc := clock.NewFake(epoch)
	w := &world{sc: s, seed: seed, clock: fc, done: make(chan struct{}), rec: history.NewRecorder(fc), store: newStore()}
	for i := 0; i < sched.nodes; i++ {
		sk := memnode.NewSkewClock(fc)
		sk.SetRate(sched.rates[i])
		addr := fmt.Sprintf("node%d:6379", i+1)
		w.nodes = append(w.nodes, &node{addr: addr, clock: sk, mem: memnode.New(addr, sk), up: true})
	}
	clients := make([]*client, s.Clients)
	for i := range clients {
		links := make([]pool.Pool, len(w.nodes))
		for j, n := range w.nodes {
			links[j] = &link{w: w, node: n, client: i, nodeIndex: j}
		}
		opts := []redlock.Option{redlock.WithClock(fc), redlock.WithBackoff(backoff(newRNG(seed, streamBackoff, i, 0)))}
		if sched.fenced {
			opts = append(opts, redlock.WithFencing())
		}
		if sched.unguarded {
			opts = append(opts, redlock.WithoutRestartQuarantine(), redlock.WithoutClockJumpDetection())
		}
		opts = append(opts, s.Options...)
		lk, err := redlock.New(links, opts...)
		if err != nil {
			for _, c := range clients[:i] {
				_ = c.lk.Close()
			}
			out.Err = fmt.Errorf("sim: building client %d: %w", i+1, err)
			return out
		}
		clients[i] = &client{w: w, name: fmt.Sprintf("c%d", i+1), lk: lk, rng: newRNG(seed, streamClient, i, 0)}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.run(ctx) })
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()

	out.Err = w.drive(ctx, cancel, sched, finished)
	close(w.done)
	cancel()
	<-finished
	for _, c := range clients {
		_ = c.lk.Close()
	}

	out.Sections = w.rec.Sections()
	// Clients that stop at the same instant record in any order.
	sort.SliceStable(out.Sections, func(i, j int) bool {
		a, b := out.Sections[i], out.Sections[j]
		if !a.Acquired.Equal(b.Acquired) {
			return a.Acquired.Before(b.Acquired)
		}
		return a.Holder < b.Holder
	})
	out.Lock = history.Check(out.Sections)
	out.Acted = history.CheckActed(out.Sections)
	for _, sec := range out.Sections {
		if sec.Fence != 0 {
			out.Fenced = true
		}
	}
	st := &w.stats
	out.Stats = Stats{
		Nodes:         sched.nodes,
		Obtained:      int(st.obtained.Load()),
		Failed:        int(st.failed.Load()),
		Released:      int(st.released.Load()),
		Extended:      int(st.extended.Load()),
		KeptAlive:     int(st.keptAlive.Load()),
		Pauses:        int(st.pauses.Load()),
		ClientCrashes: int(st.clientCrashes.Load()),
		NodeCrashes:   int(st.nodeCrashes.Load()),
		EmptyRestarts: int(st.emptyRestarts.Load()),
		Jumps:         int(st.jumps.Load()),
		Messages:      int(st.messages.Load()),
		Lost:          int(st.lost.Load()),
		Late:          int(st.late.Load()),
		Writes:        w.store.writes,
		Rejected:      w.store.rejected,
		Interleaved:   w.store.interleaved,
	}
	return out
}

// drive moves time until every client has finished: to the next due timer
// or scheduled fault, and to the horizon, where the clients are told to stop.
func (w *world) drive(ctx context.Context, stop context.CancelFunc, sched schedule, finished <-chan struct{}) error {
	horizon := epoch.Add(w.sc.Horizon)
	limit := horizon.Add(10*w.sc.maxTTL() + time.Second)
	next := 0
	for {
		synctest.Wait()
		select {
		case <-finished:
			return nil
		default:
		}
		if ctx.Err() == nil && !w.clock.Now().Before(horizon) {
			stop()
			continue
		}
		target, ok := w.clock.NextDeadline()
		if next < len(sched.events) {
			if at := epoch.Add(sched.events[next].At); !ok || at.Before(target) {
				target, ok = at, true
			}
		}
		if ctx.Err() == nil && (!ok || horizon.Before(target)) {
			target, ok = horizon, true
		}
		if !ok || target.After(limit) {
			return fmt.Errorf("sim: clients still running at %v with nothing left to happen", w.clock.Now().Sub(epoch))
		}
		w.clock.Set(target)
		synctest.Wait()
		for next < len(sched.events) && !epoch.Add(sched.events[next].At).After(target) {
			w.apply(sched.events[next])
			next++
		}
	}
}

// backoff is exponential with full jitter from 10ms to 1.28s, drawn from
// the client's own seeded stream. (Obtain shortens it to the holder's TTL,
// and release notices wake waiters earlier.)
func backoff(g *rng) redlock.Backoff {
	return redlock.BackoffFunc(func(failures int) (time.Duration, bool) {
		ceil := 10 * time.Millisecond << min(failures-1, 7)
		return g.dur(Range{10 * time.Millisecond, ceil}), true
	})
}
