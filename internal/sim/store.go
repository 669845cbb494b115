package sim

import "sync"

// store is the shared resource the lock protects, as the holders see it: it
// takes writes from sections. A write that carries a fencing token lower than
// one the store has already accepted for the same name is rejected, as a
// storage that checks fencing tokens would; writes without a token (fencing
// off) are always accepted.
//
// It also watches the writes it accepts: once another section has written a
// name, a section writing it again means the two sections interleaved at the
// store, which is what mutual exclusion exists to prevent.
type store struct {
	mu          sync.Mutex
	max         map[string]uint64 // highest fence accepted per name
	last        map[string]string // section of the last accepted write per name
	closed      map[string]bool   // sections another section has written after
	writes      int
	rejected    int
	interleaved int
}

func newStore() *store {
	return &store{max: map[string]uint64{}, last: map[string]string{}, closed: map[string]bool{}}
}

// write offers one write of name by section with its fence, and reports
// whether the store accepted it.
func (s *store) write(name, section string, fence uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fence != 0 && fence < s.max[name] {
		s.rejected++
		return false
	}
	s.max[name] = max(s.max[name], fence)
	if prev := s.last[name]; prev != section {
		if prev != "" {
			s.closed[prev] = true
		}
		if s.closed[section] {
			s.interleaved++
		}
		s.last[name] = section
	}
	s.writes++
	return true
}
