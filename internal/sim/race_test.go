//go:build race

package sim

// raceEnabled cuts the default seed counts: the race detector makes the
// simulation about six times slower.
const raceEnabled = true
