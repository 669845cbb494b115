package history

import (
	"testing"
	"time"
)

func TestCheckActed(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	sec := func(holder string, from, valid, released int, fence uint64) Section {
		s := Section{Holder: holder, Name: "x", Acquired: at(from), ValidUntil: at(valid), Fence: fence}
		if released >= 0 {
			s.Released = at(released)
		}
		return s
	}
	tests := []struct {
		name                 string
		in                   []Section
		lockOverlap, overlap int
		fence                int
	}{
		{"back to back", []Section{sec("a", 0, 100, 50, 1), sec("b", 50, 150, 120, 2)}, 0, 0, 0},
		{"acting past validity overlaps the next holder", []Section{sec("a", 0, 100, 500, 1), sec("b", 100, 200, 150, 2)}, 0, 1, 0},
		{"acting past validity after the next holder left", []Section{sec("a", 0, 100, 160, 1), sec("b", 100, 200, 150, 2)}, 0, 1, 0},
		{"never released acts to validity", []Section{sec("a", 0, 100, -1, 1), sec("b", 100, 200, 150, 2)}, 0, 0, 0},
		{"overlap within validity is found by both", []Section{sec("a", 0, 100, 80, 0), sec("b", 60, 160, 120, 0)}, 1, 1, 0},
		{"stale holder with the lower fence", []Section{sec("a", 0, 100, 300, 1), sec("b", 150, 250, 200, 2)}, 0, 1, 0},
		{"fence goes backwards", []Section{sec("a", 0, 100, 50, 5), sec("b", 60, 160, 120, 4)}, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := len(Check(tt.in).Overlaps()); got != tt.lockOverlap {
				t.Errorf("Check overlaps = %d, want %d", got, tt.lockOverlap)
			}
			r := CheckActed(tt.in)
			if got := len(r.Overlaps()); got != tt.overlap {
				t.Errorf("CheckActed overlaps = %d, want %d: %v", got, tt.overlap, r)
			}
			if got := len(r.FenceViolations()); got != tt.fence {
				t.Errorf("CheckActed fence violations = %d, want %d: %v", got, tt.fence, r)
			}
			for _, v := range r.Violations {
				if !containsSection(tt.in, v.A) || !containsSection(tt.in, v.B) {
					t.Errorf("violation %v does not carry the recorded sections", v)
				}
			}
		})
	}
}

func containsSection(ss []Section, s Section) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
