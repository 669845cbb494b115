package sim

import (
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumlock/quorumlock/internal/history"
)

var (
	seedsFlag = flag.Int("sim.seeds", 0, fmt.Sprintf("seeds TestWithinAssumptions runs (0: %d, or %d under -race or -short); "+
		"each out-of-assumption test runs a fortieth of them, at least %d (%d under -race or -short)",
		defaultSeeds, fewSeeds, minOutsideSeeds, minOutsideSeedsFew))
	seedFlag = flag.Uint64("sim.seed", 0, "replay only this seed, printing its full record (0: run -sim.seeds seeds)")
)

// stallLimit is how long one seed may take in real time before the test
// gives up on it with every goroutine's stack: seeds take milliseconds.
const stallLimit = time.Minute

// Seed counts. The race detector makes a seed about six times as costly, so
// under -race (and -short) fewer seeds run by default; -sim.seeds overrides.
const (
	defaultSeeds       = 2000
	fewSeeds           = 300
	minOutsideSeeds    = 50
	minOutsideSeedsFew = 15
)

// few reports whether the default counts are cut down.
func few() bool { return raceEnabled || testing.Short() }

// withinSeeds is how many seeds TestWithinAssumptions runs.
func withinSeeds() int {
	switch {
	case *seedsFlag > 0:
		return *seedsFlag
	case few():
		return fewSeeds
	}
	return defaultSeeds
}

// outsideSeeds is how many seeds each out-of-assumption test runs: each one
// finds its violation in most seeds, so a few dozen are plenty.
func outsideSeeds() int {
	if few() {
		return max(withinSeeds()/40, minOutsideSeedsFew)
	}
	return max(withinSeeds()/40, minOutsideSeeds)
}

// seedList returns the seeds to run: the one given by -sim.seed, or 1..n.
func seedList(n int) []uint64 {
	if *seedFlag != 0 {
		return []uint64{*seedFlag}
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

// replaying reports whether one seed is being replayed.
func replaying() bool { return *seedFlag != 0 }

// runSeeds plays s for every seed, each in its own synctest bubble, as many
// at once as there are CPUs, and returns the outcomes in seed order.
func runSeeds(t *testing.T, s Scenario, seeds []uint64) []Outcome {
	t.Helper()
	outs := make([]Outcome, len(seeds))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(seeds)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(seeds) {
					return
				}
				stall := time.AfterFunc(stallLimit, func() {
					// A goroutine blocked on a mutex held across a simulated
					// wait is not durably blocked: synctest.Wait, and the
					// run, would wait for it forever.
					debug.SetTraceback("all")
					panic(fmt.Sprintf("sim: %s seed %d still running after %v of real time; replay: %s",
						s.Name, seeds[i], stallLimit, replay(t, seeds[i])))
				})
				synctest.Test(t, func(*testing.T) { outs[i] = Run(s, seeds[i]) })
				stall.Stop()
			}
		})
	}
	wg.Wait()
	if replaying() {
		for _, o := range outs {
			t.Logf("%s\nsections:\n%s", o.Report(), sectionList(o))
		}
	}
	return outs
}

// replay is the command that runs one seed of the current test again.
func replay(t *testing.T, seed uint64) string {
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + p + "$"
	}
	return fmt.Sprintf("go test ./internal/sim -run '%s' -sim.seed=%d -v", strings.Join(parts, "/"), seed)
}

func sectionList(o Outcome) string {
	var b strings.Builder
	for _, s := range o.Sections {
		released := "never released"
		if !s.Released.IsZero() {
			released = fmt.Sprintf("stopped acting %v after start", s.Released.Sub(epoch))
		}
		fmt.Fprintf(&b, "  %v (%s)\n", s, released)
	}
	return b.String()
}

func total(outs []Outcome) Stats {
	var st Stats
	for _, o := range outs {
		st = st.Add(o.Stats)
	}
	return st
}

// TestWithinAssumptions runs every fault Redlock tolerates, at the edge of
// what it assumes, and expects mutual exclusion to hold in every seed.
func TestWithinAssumptions(t *testing.T) {
	s := WithinAssumptions()
	outs := runSeeds(t, s, seedList(withinSeeds()))
	failed := 0
	for _, o := range outs {
		if o.OK() {
			continue
		}
		failed++
		if failed <= 3 {
			t.Errorf("seed %d failed within the assumptions; replay: %s\n%s", o.Seed, replay(t, o.Seed), o.Report())
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d seeds failed", failed, len(outs))
	}
	st := total(outs)
	t.Logf("%d seeds, %d sections: %v", len(outs), st.Obtained, st)
	if replaying() {
		return
	}
	fenced := 0
	for _, o := range outs {
		if o.Fenced {
			fenced++
		}
	}
	// The verdict means something only if the faults happened.
	for _, c := range []struct {
		what string
		n    int
	}{
		{"locks obtained", st.Obtained}, {"extensions", st.Extended}, {"kept-alive locks", st.KeptAlive}, {"holder pauses", st.Pauses},
		{"client crashes", st.ClientCrashes}, {"node crashes", st.NodeCrashes}, {"empty restarts", st.EmptyRestarts},
		{"clock jumps", st.Jumps}, {"lost messages", st.Lost}, {"late requests", st.Late}, {"store writes", st.Writes},
		{"fenced runs", fenced},
	} {
		if c.n == 0 {
			t.Errorf("no %s in %d seeds: the scenario does not exercise them", c.what, len(outs))
		}
	}
}

// What an out-of-assumption scenario is expected to break.
const (
	breaksLock  = "overlap within validity" // two holders within their validity
	breaksActed = "overlap as acted"        // only what holders did past validity
	breaksFence = "fence order"             // only the order of fencing tokens
)

// TestOutsideAssumptions breaks one of Redlock's assumptions at a time and
// expects the simulation to find what follows, and nothing else. The
// scenarios turn the coordinator's restart and clock-jump guards off, to
// show Redlock as published; each is then run again with the guards on:
// where guarded says so, they must prevent every violation, otherwise how
// many seeds still break is reported.
func TestOutsideAssumptions(t *testing.T) {
	tests := []struct {
		scenario Scenario
		breaks   string
		guarded  bool // the guards prevent every violation
	}{
		{RestartWithoutPersistence(), breaksLock, false},
		{ClockJumpForward(), breaksLock, true},
		{FastClock(), breaksLock, false},
		{PauseBeyondValidity(), breaksActed, false},
		{FenceCounterLoss(), breaksFence, false},
	}
	for _, tt := range tests {
		t.Run(tt.scenario.Name, func(t *testing.T) {
			outs := runSeeds(t, tt.scenario, seedList(outsideSeeds()))
			found, first := countBroken(t, outs, tt.breaks)
			st := total(outs)
			t.Logf("%s found in %d of %d seeds (%d sections): %v", tt.breaks, found, len(outs), st.Obtained, st)
			if first != nil {
				res := first.Lock
				if tt.breaks == breaksActed {
					res = first.Acted
				}
				t.Logf("first: seed %d, replay: %s\n  %s", first.Seed, replay(t, first.Seed), describe(res.Violations[0]))
			}
			if found == 0 && !replaying() {
				t.Errorf("no seed of %d found a violation", len(outs))
			}
			if tt.scenario.Options == nil {
				return // nothing to turn back on
			}
			t.Run("guarded", func(t *testing.T) {
				outs := runSeeds(t, Guarded(tt.scenario), seedList(outsideSeeds()))
				found, first := countBroken(t, outs, tt.breaks)
				t.Logf("with the guards on, %s found in %d of %d seeds: %v", tt.breaks, found, len(outs), total(outs))
				if first != nil {
					t.Logf("first: seed %d, replay: %s\n%s", first.Seed, replay(t, first.Seed), first.Report())
					if tt.guarded {
						t.Errorf("the guards did not prevent it in %d of %d seeds", found, len(outs))
					}
				}
			})
		})
	}
}

// countBroken counts the outcomes that break what breaks names, and fails
// the test for any that break something else, or could not run.
func countBroken(t *testing.T, outs []Outcome, breaks string) (found int, first *Outcome) {
	t.Helper()
	for i, o := range outs {
		if o.Err != nil {
			t.Errorf("seed %d: %v; replay: %s", o.Seed, o.Err, replay(t, o.Seed))
		}
		lock, acted, fence := len(o.Lock.Overlaps()), len(o.Acted.Overlaps()), len(o.Lock.FenceViolations())
		var n, other int
		switch breaks {
		case breaksLock:
			n = lock
		case breaksActed:
			n, other = acted, lock+fence
		case breaksFence:
			n, other = fence, lock
		}
		if other > 0 {
			t.Errorf("seed %d broke more than %s; replay: %s\n%s", o.Seed, breaks, replay(t, o.Seed), o.Report())
		}
		if n > 0 {
			found++
			if first == nil {
				first = &outs[i]
			}
		}
	}
	return found, first
}

// describe prints a violation with when each holder really stopped acting.
func describe(v history.Violation) string {
	return fmt.Sprintf("%v\n  (%s acted until %s; %s acted until %s)", v,
		v.A.Holder, v.A.ActedUntil().Format("15:04:05.000000"), v.B.Holder, v.B.ActedUntil().Format("15:04:05.000000"))
}

// TestFencingRejectsStaleHolder is the pause scenario again, with fencing:
// a holder that acts after its validity overlaps the next holder, but its
// token is the lower one, so a store that checks tokens rejects its writes.
func TestFencingRejectsStaleHolder(t *testing.T) {
	if !FencingAvailable() {
		t.Skip("needs (*redlock.Lock).Fence() uint64, which redlock does not have yet")
	}
	s := PauseBeyondValidity()
	s.Name, s.FencedP = "pause-beyond-validity-fenced", 1
	outs := runSeeds(t, s, seedList(outsideSeeds()))
	stale := 0
	for _, o := range outs {
		if !o.Fenced && o.Stats.Obtained > 0 {
			t.Fatalf("seed %d: the locks carried no fencing token", o.Seed)
		}
		if o.Err != nil || !o.Lock.OK() || o.Stats.Interleaved > 0 {
			t.Errorf("seed %d: fenced run broke a rule; replay: %s\n%s", o.Seed, replay(t, o.Seed), o.Report())
		}
		for _, v := range o.Acted.Overlaps() {
			stale++
			if v.A.Fence >= v.B.Fence {
				t.Errorf("seed %d: the stale holder's token is not the lower one: %s; replay: %s", o.Seed, describe(v), replay(t, o.Seed))
			}
		}
	}
	st := total(outs)
	t.Logf("%d stale holders in %d seeds; the store rejected %d of %d writes and saw no interleaving: %v",
		stale, len(outs), st.Rejected, st.Rejected+st.Writes, st)
	if replaying() {
		return
	}
	if stale == 0 {
		t.Errorf("no holder acted past its validity in %d seeds", len(outs))
	}
	if st.Rejected == 0 {
		t.Errorf("the store rejected no stale write in %d seeds", len(outs))
	}
}
