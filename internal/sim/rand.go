package sim

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Stream kinds: every actor of a run draws from its own stream, so that the
// order in which goroutines happen to run never changes what one of them
// draws.
const (
	streamSchedule = iota + 1 // node faults and clocks, drawn before the run starts
	streamClient              // one client's behaviour
	streamBackoff             // one client's retry waits
	streamLink                // one client-to-node link's message fates
	streamSetup               // cluster size, fencing
	streamSub                 // one Pub/Sub connection's event delays
)

// rng is a seeded generator safe for concurrent use.
type rng struct {
	mu sync.Mutex
	r  *rand.Rand
}

// newRNG returns the stream of the given kind and actor ids for a seed.
func newRNG(seed uint64, kind, a, b int) *rng {
	return &rng{r: rand.New(rand.NewPCG(mix(seed), mix(uint64(kind)<<40|uint64(a)<<20|uint64(b))))}
}

// mix is splitmix64's finaliser: nearby seeds and ids give unrelated streams.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// chance reports true with probability p.
func (g *rng) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.r.Float64() < p
}

// dur draws a duration uniformly from r, with nanosecond resolution so that
// two independently drawn instants practically never coincide.
func (g *rng) dur(r Range) time.Duration {
	if r.Max <= r.Min {
		return r.Min
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return r.Min + time.Duration(g.r.Int64N(int64(r.Max-r.Min)+1))
}

// intn draws an int uniformly from [lo, hi].
func (g *rng) intn(lo, hi int) int {
	if hi <= lo {
		return lo
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return lo + g.r.IntN(hi-lo+1)
}

// float draws a float64 uniformly from [lo, hi].
func (g *rng) float(lo, hi float64) float64 {
	if hi <= lo {
		return lo
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return lo + g.r.Float64()*(hi-lo)
}
