package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"
)

// NewInstanceID returns an id for this process as the owner of claims and
// leases: host name, process id and a random part, so that a restarted
// process (same host, maybe the same pid) is a new owner.
func NewInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(r[:]))
}

// Backoff paces a loop's retries while the store is unavailable: each
// failure doubles the wait, from Min up to Max, and the first failure and
// the first success after failures are reported once each, so that an
// outage is logged as one "down" and one "up" line rather than one error
// per poll. The zero value uses 100ms and 10s. Not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration

	wait  time.Duration
	since time.Time // start of the outage; zero while up
}

// Fail records a failure and returns how long to wait before trying again,
// and whether this failure began an outage (the one to log).
func (b *Backoff) Fail() (wait time.Duration, first bool) {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi < lo {
		hi = max(lo, 10*time.Second)
	}
	first = b.since.IsZero()
	if first {
		b.since = time.Now()
		b.wait = lo
	} else {
		b.wait = min(2*b.wait, hi)
	}
	return b.wait, first
}

// Ok records a success and, if it ends an outage, returns true and how
// long the outage lasted.
func (b *Backoff) Ok() (recovered bool, down time.Duration) {
	if b.since.IsZero() {
		return false, 0
	}
	down = time.Since(b.since)
	b.since, b.wait = time.Time{}, 0
	return true, down
}

// Down reports whether an outage is in progress.
func (b *Backoff) Down() bool { return !b.since.IsZero() }
