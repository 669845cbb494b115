package history

import (
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
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
		name           string
		in             []Section
		overlap, fence int
	}{
		{"empty", nil, 0, 0},
		{"back to back", []Section{sec("a", 0, 100, 50, 1), sec("b", 50, 150, 120, 2)}, 0, 0},
		{"release after validity counts to validity", []Section{sec("a", 0, 100, 500, 1), sec("b", 100, 200, 150, 2)}, 0, 0},
		{"overlap within validity", []Section{sec("a", 0, 100, 80, 1), sec("b", 60, 160, 120, 2)}, 1, 0},
		{"never released holds to validity", []Section{sec("a", 0, 100, -1, 0), sec("b", 99, 200, 150, 0)}, 1, 0},
		{"long section covers later ones", []Section{sec("a", 0, 1000, 900, 0), sec("b", 100, 200, 150, 0), sec("c", 300, 400, 350, 0)}, 2, 0},
		{"fence goes backwards", []Section{sec("a", 0, 100, 50, 5), sec("b", 60, 160, 120, 4)}, 0, 1},
		{"equal fence", []Section{sec("a", 0, 100, 50, 5), sec("b", 60, 160, 120, 5)}, 0, 1},
		{"other names do not interact", []Section{sec("a", 0, 100, 80, 0), {Holder: "b", Name: "y", Acquired: at(10), ValidUntil: at(90)}}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(tt.in)
			if got := len(r.Overlaps()); got != tt.overlap {
				t.Errorf("overlaps = %d, want %d: %v", got, tt.overlap, r)
			}
			if got := len(r.FenceViolations()); got != tt.fence {
				t.Errorf("fence violations = %d, want %d: %v", got, tt.fence, r)
			}
			if r.OK() != (tt.overlap+tt.fence == 0) {
				t.Errorf("OK() = %v", r.OK())
			}
		})
	}
}
