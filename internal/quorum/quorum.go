// Package quorum counts the votes of N nodes and says as soon as the outcome
// is certain.
package quorum

// Of returns the majority of n nodes: n/2 + 1.
func Of(n int) int { return n/2 + 1 }

// Tally counts yes votes and failures (no votes and errors) out of N nodes.
// The zero value is not usable; build it with New.
type Tally struct {
	N, Need     int
	Yes, Failed int
}

// New returns a Tally for n nodes that needs need yes votes.
func New(n, need int) Tally { return Tally{N: n, Need: need} }

// Add records one node's vote.
func (t *Tally) Add(yes bool) {
	if yes {
		t.Yes++
	} else {
		t.Failed++
	}
}

// Reached reports whether enough nodes said yes.
func (t *Tally) Reached() bool { return t.Yes >= t.Need }

// Impossible reports whether so many nodes failed that Need yes votes can no
// longer be reached.
func (t *Tally) Impossible() bool { return t.N-t.Failed < t.Need }

// Decided reports whether the outcome is certain.
func (t *Tally) Decided() bool { return t.Reached() || t.Impossible() }
