package sim

import "testing"

func TestStore(t *testing.T) {
	type w struct {
		section string
		fence   uint64
		ok      bool
	}
	tests := []struct {
		name                  string
		writes                []w
		rejected, interleaved int
	}{
		{"one section", []w{{"a", 0, true}, {"a", 0, true}}, 0, 0},
		{"sections in turn", []w{{"a", 0, true}, {"b", 0, true}, {"c", 0, true}}, 0, 0},
		{"unfenced stale write interleaves", []w{{"a", 0, true}, {"b", 0, true}, {"a", 0, true}}, 0, 1},
		{"fenced stale write is rejected", []w{{"a", 1, true}, {"b", 2, true}, {"a", 1, false}, {"b", 2, true}}, 1, 0},
		{"stale write before the newer one lands", []w{{"a", 1, true}, {"a", 1, true}, {"b", 2, true}}, 0, 0},
		{"equal fences of two sections are accepted", []w{{"a", 2, true}, {"b", 2, true}, {"a", 2, true}}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore()
			for i, x := range tt.writes {
				if got := s.write("k", x.section, x.fence); got != x.ok {
					t.Errorf("write %d (%s, fence %d) accepted = %v, want %v", i, x.section, x.fence, got, x.ok)
				}
			}
			if s.rejected != tt.rejected || s.interleaved != tt.interleaved {
				t.Errorf("rejected %d, interleaved %d; want %d, %d", s.rejected, s.interleaved, tt.rejected, tt.interleaved)
			}
		})
	}
}
