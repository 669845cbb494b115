package history

import "time"

// ActedUntil returns when the holder really stopped acting under the lock:
// Released when it is set, even past ValidUntil, else ValidUntil.
//
// End clamps a section to its validity, which is what the lock promises.
// ActedUntil does not: a holder that paused after obtaining the lock and then
// resumed work without checking the lock's remaining validity went on acting
// after the lock had lapsed, and its Released says until when.
func (s Section) ActedUntil() time.Time {
	if !s.Released.IsZero() {
		return s.Released
	}
	return s.ValidUntil
}

// CheckActed is Check applied to what the holders did rather than to what
// the lock allowed: each section runs from Acquired to ActedUntil. A holder
// that acted after its validity ended shows up here as an overlap with the
// next holder, although Check finds nothing wrong with the lock itself. Fence
// order is checked as Check does. The violations carry the sections as they
// were recorded.
func CheckActed(sections []Section) Result {
	type id struct {
		holder, name string
		acquired     time.Time
		fence        uint64
	}
	key := func(s Section) id { return id{s.Holder, s.Name, s.Acquired, s.Fence} }
	orig := make(map[id]Section, len(sections))
	acted := make([]Section, len(sections))
	for i, s := range sections {
		if _, dup := orig[key(s)]; !dup {
			orig[key(s)] = s
		}
		a := s
		a.ValidUntil = s.ActedUntil()
		a.Released = a.ValidUntil
		acted[i] = a
	}
	res := Check(acted)
	for i, v := range res.Violations {
		res.Violations[i].A, res.Violations[i].B = orig[key(v.A)], orig[key(v.B)]
	}
	return res
}
