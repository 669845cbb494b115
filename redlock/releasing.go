package redlock

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// A Locker that obtains a lock again right after releasing it (a loop that
// locks the same name, or goroutines taking turns) often finds its own last
// key still on a node: the release's call to a node the round did not wait
// for, or to a node that answered the acquisition late, has not reached it
// yet. Asked then, the node refuses, and the refusal costs it a script (to
// tell who holds the key) and the attempt a second round trip, for a vote it
// does not get. So an attempt at a lock not known to be contended spares the
// nodes where this Locker's release of the same lock has not answered yet,
// while a quorum and one more nodes are asked, as it spares lagging nodes
// (lag.go). Sparing a node is always safe: its vote is one fewer yes.

// releasingSlots is how many locks' last releases are remembered at once,
// by a hash of the key: two locks sharing a slot only lose the sparing.
const releasingSlots = 256

// releasing remembers, per slot, the last abandoned acquisition whose key
// some node may still hold.
type releasing struct {
	seed  maphash.Seed
	slots [releasingSlots]atomic.Pointer[acquisition]
}

func newReleasing() *releasing { return &releasing{seed: maphash.MakeSeed()} }

func (r *releasing) slot(key string) *atomic.Pointer[acquisition] {
	return &r.slots[maphash.String(r.seed, key)%releasingSlots]
}

// track records a, abandoned with the nodes of a.unreleased still to
// release.
func (r *releasing) track(a *acquisition) {
	if a.unreleased.Load() != 0 {
		r.slot(a.keys[0]).Store(a)
	}
}

// pending returns the nodes where the last tracked release of key has not
// answered yet, as a bit set.
func (r *releasing) pending(key string) uint64 {
	a := r.slot(key).Load()
	if a == nil || a.keys[0] != key {
		return 0
	}
	return a.unreleased.Load()
}

// avoidReleasing returns the nodes a new attempt at key is to spare because
// this Locker's release of key is still on its way there: as many as leave a
// quorum and one more nodes asked, counting only the nodes whose votes can be
// counted on (askable, and whose last call did not fail).
func (lk *Locker) avoidReleasing(key string) uint64 {
	mask := lk.releasing.pending(key)
	if mask == 0 {
		return 0
	}
	askable := lk.askable()
	for i := range lk.nodes {
		if lk.silent[i].failing.Load() {
			askable &^= 1 << i
		}
	}
	budget := bits.OnesCount64(askable) - (lk.quorum + 1)
	var avoid uint64
	for mask &= askable; mask != 0 && budget > 0; budget-- {
		bit := mask & -mask
		avoid |= bit
		mask &^= bit
	}
	return avoid
}

// sparing returns a new acquisition's sparing policy for fanout: the nodes
// of avoid are not asked, nor, with lagging set, lagging nodes while a vote
// is to spare (counting the avoided nodes as not asked).
func (lk *Locker) sparing(avoid uint64, lagging bool) func(i int) error {
	switch {
	case avoid != 0:
	case lagging:
		return lk.spareLagging
	default:
		return nil
	}
	spared := bits.OnesCount64(avoid)
	return func(i int) error {
		if i < 64 && avoid&(1<<i) != 0 {
			return errNodeReleasing{}
		}
		if lagging && lk.spare(i, spared) {
			return errNodeLagging{}
		}
		return nil
	}
}

// newSpareLagging returns sparing's policy when no node is avoided: made
// once, in New, so that each acquisition does not make its own.
func (lk *Locker) newSpareLagging() func(i int) error {
	return func(i int) error {
		if lk.spare(i, 0) {
			return errNodeLagging{}
		}
		return nil
	}
}

// errNodeReleasing is the failure of a call an acquisition spared because
// the Locker's release of the same lock had not answered there yet.
type errNodeReleasing struct{}

func (errNodeReleasing) Error() string {
	return "not asked: this Locker's release of the lock's last key there had not answered yet"
}
