package redlock_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// BenchmarkParallel has 64 goroutines each obtain and release a lock of its
// own, never contended, in a loop over 5 real redis-server nodes: the
// throughput of a busy service locking many different resources at once.
//
//	goroutines=64/lock    the 64 goroutines share one Locker
//	goroutines=64/floor   each goroutine runs the floor round (bench_test.go)
//	                      on its own key, over the same pools
//
// No lock is ever contended, so every attempt should succeed at once: the
// lock case also reports failed-attempts/op and quarantines (the votes of a
// node the Locker judged to have lost its data or jumped its clock are not
// counted), which should both be 0; when they are not, ops/s is not the
// coordinator's cost but the cost of those retries.
//
// Both use the same pools, which keep up to four times 64 idle connections
// per node, so that no connection the timed loop needs is closed for want of
// room: the lock's calls to the nodes a round did not wait for end during the
// goroutine's next round, and hold a connection meanwhile (up to about 140
// per node were open at once here). dials/op reports the connections the
// nodes accepted in the timed loop, per round: what the untimed warm-up
// rounds did not open. The goroutines are started here rather than by
// b.RunParallel, whose count is a multiple of GOMAXPROCS: there are 64 on
// any machine, many more than its cores, as in a real service. ns/op is the
// wall time per round across all of them; ops/s is its inverse, and
// round-p50-ms and round-p99-ms are what one goroutine waits for a round.
func BenchmarkParallel(b *testing.B) {
	const goroutines = 64
	servers := redistest.Start(b, 5)
	pools := redistest.Pools(b, servers, pool.WithMaxIdle(4*goroutines))
	prefix := fmt.Sprintf("goroutines=%d", goroutines)

	b.Run(prefix+"/lock", func(b *testing.B) {
		var events eventCounts
		lk := newBenchLocker(b, pools, redlock.WithObserver(events.observe))
		ctx := context.Background()
		rounds := make([]func() error, goroutines)
		for i := range rounds {
			name := "parallel-" + strconv.Itoa(i)
			rounds[i] = func() error {
				l, err := lk.Obtain(ctx, name, 10*time.Second)
				if err != nil {
					return err
				}
				return l.Release(ctx)
			}
		}
		runParallel(b, pools, rounds)
		events.report(b)
	})
	b.Run(prefix+"/floor", func(b *testing.B) {
		rounds := make([]func() error, goroutines)
		for i := range rounds {
			// A floor per goroutine, for a key per goroutine; they share the
			// pools, as the goroutines of the lock case share the Locker's.
			f := newFloor(b, pools, "quorumlock:parallel-floor-"+strconv.Itoa(i))
			rounds[i] = func() error {
				token, got := f.acquire()
				if got < f.quorum {
					return fmt.Errorf("floor %s: %d of %d nodes granted", f.key, got, len(f.rps))
				}
				f.release(token)
				return nil
			}
		}
		runParallel(b, pools, rounds)
	})
}

// runParallel runs b.N rounds in all, goroutine i running rounds[i] again
// and again, and reports the throughput, the per-round percentiles, and the
// connections the nodes of pools accepted meanwhile.
// Every goroutine first runs warmRounds rounds untimed, all at once, so that
// the pools hold as many connections as the timed loop needs: a round's
// stragglers hold theirs into the goroutine's next round, so one round each
// opens only about half of them.
const warmRounds = 20

func runParallel(b *testing.B, pools []pool.Pool, rounds []func() error) {
	run := func(total int) []time.Duration {
		var (
			left  atomic.Int64
			wg    sync.WaitGroup
			mu    sync.Mutex
			times []time.Duration
			first error
		)
		left.Store(int64(total))
		for _, round := range rounds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				for left.Add(-1) >= 0 {
					t0 := time.Now()
					if err := round(); err != nil {
						mu.Lock()
						if first == nil {
							first = err
						}
						mu.Unlock()
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				times = append(times, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		if first != nil {
			b.Fatal(first)
		}
		return times
	}
	var warm sync.WaitGroup
	errs := make([]error, len(rounds))
	for i, round := range rounds {
		warm.Add(1)
		go func() {
			defer warm.Done()
			for range warmRounds {
				if errs[i] = round(); errs[i] != nil {
					return
				}
			}
		}()
	}
	warm.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	dials := 0
	for _, p := range pools {
		dials -= int(connectionsReceived(b, p))
	}
	b.ResetTimer()
	start := time.Now()
	times := run(b.N)
	elapsed := time.Since(start)
	b.StopTimer()
	for _, p := range pools {
		dials += int(connectionsReceived(b, p))
	}
	b.ReportMetric(float64(dials)/float64(b.N), "dials/op")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(percentileMs(times, 0.50), "round-p50-ms")
	b.ReportMetric(percentileMs(times, 0.99), "round-p99-ms")
}

// eventCounts counts what a Locker's observer reports that a run without
// contention or faults should never see.
type eventCounts struct {
	failed, quarantined atomic.Int64
}

func (e *eventCounts) observe(ev redlock.Event) {
	switch ev.Kind {
	case redlock.EventObtainFailed:
		e.failed.Add(1)
	case redlock.EventQuarantined, redlock.EventClockJump:
		e.quarantined.Add(1)
	}
}

// report adds the counts to b's metrics. They include the untimed warm-up
// round of each goroutine.
func (e *eventCounts) report(b *testing.B) {
	b.ReportMetric(float64(e.failed.Load())/float64(b.N), "failed-attempts/op")
	b.ReportMetric(float64(e.quarantined.Load()), "quarantines")
}
