package sim

import (
	"reflect"
	"testing"
	"time"
)

func TestScheduleIsAFunctionOfTheSeed(t *testing.T) {
	s := WithinAssumptions()
	differ := 0
	for seed := uint64(1); seed <= 50; seed++ {
		a, b := newSchedule(s, seed), newSchedule(s, seed)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d drew two different schedules:\n%v\n%v", seed, a.describe(), b.describe())
		}
		if !reflect.DeepEqual(a, newSchedule(s, seed+1)) {
			differ++
		}
	}
	if differ < 45 {
		t.Errorf("only %d of 50 neighbouring seeds drew different schedules", differ)
	}
}

func TestScheduleStaysWithinTheScenario(t *testing.T) {
	tests := []Scenario{WithinAssumptions(), RestartWithoutPersistence(), ClockJumpForward(), FenceCounterLoss()}
	for _, s := range tests {
		t.Run(s.Name, func(t *testing.T) {
			for seed := uint64(1); seed <= 200; seed++ {
				sc := newSchedule(s, seed)
				down := map[int]time.Duration{} // node -> when it crashed
				keep := map[int]bool{}
				for _, e := range sc.events {
					switch e.Kind {
					case evCrash:
						if _, dup := down[e.Node]; dup {
							t.Fatalf("seed %d: node%d crashes while down", seed, e.Node+1)
						}
						down[e.Node], keep[e.Node] = e.At, e.Keep
						if sc.fenced && !s.FencedLoss && !e.Keep {
							t.Fatalf("seed %d: a fenced run's node lost its data", seed)
						}
					case evRestart:
						at, ok := down[e.Node]
						if !ok {
							t.Fatalf("seed %d: node%d restarts while up", seed, e.Node+1)
						}
						delete(down, e.Node)
						if r := s.Crash.EmptyDown; !keep[e.Node] && (e.At-at < r.Min || e.At-at > r.Max) {
							t.Fatalf("seed %d: node%d down %v without its data, outside %v", seed, e.Node+1, e.At-at, r)
						}
					case evJump:
						if e.Jump > s.Clock.Forward.Max || -e.Jump > s.Clock.Back.Max {
							t.Fatalf("seed %d: jump %v outside the scenario", seed, e.Jump)
						}
					}
				}
				for i, r := range sc.rates {
					if r < s.Clock.Rate[0] || r > s.Clock.Rate[1] {
						t.Fatalf("seed %d: node%d rate %v outside %v", seed, i+1, r, s.Clock.Rate)
					}
				}
			}
		})
	}
}
