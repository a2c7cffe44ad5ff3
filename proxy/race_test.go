//go:build race

package proxy

// raceEnabled skips tests whose figures the race detector changes.
const raceEnabled = true
