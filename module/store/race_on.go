//go:build race

package store

// raceEnabled: built with the race detector (see Badger.gcGate).
const raceEnabled = true
