// Package history records critical sections and checks them for mutual
// exclusion and fencing-token order. The integration suite and the simulation
// share it, so both are judged by the same rules.
package history

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/quorumlock/quorumlock/clock"
)

// Section is one critical section: a holder believed it held Name from
// Acquired until the earlier of ValidUntil and Released.
type Section struct {
	Holder     string
	Name       string
	Acquired   time.Time
	ValidUntil time.Time
	Released   time.Time // zero: never released (the holder crashed or paused)
	Fence      uint64    // fencing token, 0 when fencing is off
}

// End returns when the holder stopped acting under the lock: the release, or
// the end of its validity if that came first or it never released.
func (s Section) End() time.Time {
	if !s.Released.IsZero() && s.Released.Before(s.ValidUntil) {
		return s.Released
	}
	return s.ValidUntil
}

func (s Section) String() string {
	return fmt.Sprintf("%s held %q from %s to %s (valid until %s, fence %d)",
		s.Holder, s.Name, s.Acquired.Format("15:04:05.000000"), s.End().Format("15:04:05.000000"),
		s.ValidUntil.Format("15:04:05.000000"), s.Fence)
}

// Recorder collects sections from many goroutines, timed by one clock.
type Recorder struct {
	Clock clock.Clock

	mu       sync.Mutex
	sections []Section
}

// NewRecorder returns a Recorder that reads c.
func NewRecorder(c clock.Clock) *Recorder { return &Recorder{Clock: c} }

// Now reads the recorder's clock.
func (r *Recorder) Now() time.Time { return r.Clock.Now() }

// Add records a finished (or abandoned) section.
func (r *Recorder) Add(s Section) {
	r.mu.Lock()
	r.sections = append(r.sections, s)
	r.mu.Unlock()
}

// Sections returns a copy of everything recorded.
func (r *Recorder) Sections() []Section {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Section(nil), r.sections...)
}

// Violation is a pair of sections that break a rule.
type Violation struct {
	Kind string // "overlap" or "fence order"
	A, B Section
}

func (v Violation) String() string { return v.Kind + ": " + v.A.String() + " AND " + v.B.String() }

// Result is the outcome of Check.
type Result struct {
	Sections   int
	Violations []Violation
}

// OK reports whether no rule was broken.
func (r Result) OK() bool { return len(r.Violations) == 0 }

// Overlaps returns the overlap violations only.
func (r Result) Overlaps() []Violation { return r.kind("overlap") }

// FenceViolations returns the fence-order violations only.
func (r Result) FenceViolations() []Violation { return r.kind("fence order") }

func (r Result) kind(k string) []Violation {
	var out []Violation
	for _, v := range r.Violations {
		if v.Kind == k {
			out = append(out, v)
		}
	}
	return out
}

func (r Result) String() string {
	if r.OK() {
		return fmt.Sprintf("%d sections, no violation", r.Sections)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d sections, %d violations:", r.Sections, len(r.Violations))
	for i, v := range r.Violations {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(r.Violations)-10)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(v.String())
	}
	return b.String()
}

// Check verifies, per lock name, that (1) no two sections of different
// holders overlap in time, each taken from Acquired to End, and (2) where both
// carry a fence, the section that starts later has the larger fence.
func Check(sections []Section) Result {
	res := Result{Sections: len(sections)}
	byName := map[string][]Section{}
	for _, s := range sections {
		byName[s.Name] = append(byName[s.Name], s)
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ss := byName[n]
		sort.Slice(ss, func(i, j int) bool { return ss[i].Acquired.Before(ss[j].Acquired) })
		// Overlap: sweep in start order, remembering the section that ends last.
		var far Section
		for i, s := range ss {
			if i > 0 && s.Acquired.Before(far.End()) {
				res.Violations = append(res.Violations, Violation{Kind: "overlap", A: far, B: s})
			}
			if i == 0 || s.End().After(far.End()) {
				far = s
			}
		}
		// Fence order: strictly increasing in start order.
		var prev *Section
		for i := range ss {
			s := ss[i]
			if s.Fence == 0 {
				continue
			}
			if prev != nil && s.Fence <= prev.Fence {
				res.Violations = append(res.Violations, Violation{Kind: "fence order", A: *prev, B: s})
			}
			prev = &ss[i]
		}
	}
	return res
}
