//go:build race

package sim

// raceEnabled: the race detector slows the simulation down about sixfold.
const raceEnabled = true
