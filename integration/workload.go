package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/quorumlock/quorumlock/internal/history"
	"github.com/quorumlock/quorumlock/redlock"
)

// Workload is a set of clients contending for one lock, each recording every
// critical section it believes it held into one history.Recorder, so that
// history.Check can judge mutual exclusion afterwards.
//
// A section runs from just after Obtain returns to just before Release is
// called, and claims validity until the Lock's ValidUntil, all read from the
// Recorder's clock: the same monotonic clock for every client of the process.
// The Lockers must use that clock too (the default, clock.Real, is).
type Workload struct {
	// Name is the lock every client contends for.
	Name string
	// TTL is the lock's time to live.
	TTL time.Duration
	// Hold is the longest time spent inside a critical section; each section
	// lasts a random time between Hold/2 and Hold.
	Hold time.Duration
	// Think is the longest pause between a release and the next Obtain, so
	// that the last holder does not always win the next round.
	Think time.Duration
	// AttemptTimeout bounds each Obtain (its retries included).
	AttemptTimeout time.Duration
	// Recorder receives every section.
	Recorder *history.Recorder
}

// Stats is what one client of a Workload did.
type Stats struct {
	Holder   string
	Acquired int
	// Failed counts failed Obtains by reason: "held", "no quorum",
	// "expired", "deadline" (the attempt's timeout, with the reason of its
	// last round), or "other".
	Failed map[string]int
	// ReleaseErrors counts Releases that did not return nil.
	ReleaseErrors int
	// LastErr is the last error of any kind, for messages.
	LastErr error
}

// String summarises the tally in one line.
func (s Stats) String() string {
	reasons := make([]string, 0, len(s.Failed))
	for r, n := range s.Failed {
		reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
	}
	sort.Strings(reasons)
	return fmt.Sprintf("%s: %d acquired, failed [%s], %d release errors",
		s.Holder, s.Acquired, strings.Join(reasons, ", "), s.ReleaseErrors)
}

// Run makes every locker contend until ctx ends, then waits for the clients
// to finish their current section, and returns each one's Stats in order.
func (w Workload) Run(ctx context.Context, lockers []*redlock.Locker) []Stats {
	stats := make([]Stats, len(lockers))
	var wg sync.WaitGroup
	for i, lk := range lockers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i] = w.client(ctx, fmt.Sprintf("client-%d", i), lk)
		}()
	}
	wg.Wait()
	return stats
}

func (w Workload) client(ctx context.Context, holder string, lk *redlock.Locker) Stats {
	st := Stats{Holder: holder, Failed: map[string]int{}}
	rec := w.Recorder
	for ctx.Err() == nil {
		actx, cancel := context.WithTimeout(ctx, w.AttemptTimeout)
		lock, err := lk.Obtain(actx, w.Name, w.TTL)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				break // the run is over, not a failure of the lock
			}
			st.Failed[Reason(err)]++
			st.LastErr = err
			continue
		}
		acquired := rec.Now()
		validUntil := lock.ValidUntil()
		sleep(w.Hold/2 + rand.N(w.Hold/2+1))
		released := rec.Now()
		// The release is not bounded by ctx: a run that ends mid-section still
		// releases, as a well-behaved client does.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if err := lock.Release(rctx); err != nil {
			st.ReleaseErrors++
			st.LastErr = err
		}
		cancel()
		rec.Add(history.Section{
			Holder: holder, Name: w.Name, Acquired: acquired, ValidUntil: validUntil, Released: released,
		})
		st.Acquired++
		if w.Think > 0 {
			sleep(rand.N(w.Think))
		}
	}
	return st
}

// Reason names why an Obtain failed, for tallies and messages.
func Reason(err error) string {
	var reason string
	switch {
	case errors.Is(err, redlock.ErrNoQuorum):
		reason = "no quorum"
	case errors.Is(err, redlock.ErrHeld):
		reason = "held"
	case errors.Is(err, redlock.ErrExpired):
		reason = "expired"
	default:
		reason = "other"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "deadline (" + reason + ")"
	}
	return reason
}

// Between returns how many sections were acquired in [from, to).
func Between(sections []history.Section, from, to time.Time) int {
	n := 0
	for _, s := range sections {
		if !s.Acquired.Before(from) && s.Acquired.Before(to) {
			n++
		}
	}
	return n
}

func sleep(d time.Duration) {
	if d > 0 {
		time.Sleep(d)
	}
}
