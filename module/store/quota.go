package store

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// Quotas per identity.
//
// An intent created with a Quota charge is counted in its subject's usage
// (per profile and subject, the identity or "ip:<address>"): Create checks
// the caps and adds the intent to the pending count and its reservation to
// the reserved bytes in the same atomic step that stores the intent; the
// transition that moves it out of pending takes both away again in the
// same step that writes the transition, and a completion adds the verified
// size to the subject's verified bytes of the current window bucket. So
// the Counters always equal the sum over the subject's stored intents,
// whatever crashes or races happen.

// QuotaLimits are a profile's caps per subject; zero means no cap.
type QuotaLimits struct {
	MaxPending  int64
	MaxReserved int64
	// MaxVerified caps the bytes verified within the last VerifiedWindow,
	// counting the bytes reserved by pending grants as if already verified
	// (so concurrent grants can never complete beyond the cap).
	MaxVerified    int64
	VerifiedWindow time.Duration
}

// Any reports whether any cap is set.
func (l QuotaLimits) Any() bool { return l.MaxPending > 0 || l.MaxReserved > 0 || l.MaxVerified > 0 }

// BucketWidth is the width of the buckets the verified bytes are summed in
// for this window: a sixtieth of it, at least a second.
func (l QuotaLimits) BucketWidth() time.Duration {
	if l.VerifiedWindow <= 0 {
		return time.Hour
	}
	return max(time.Second, (l.VerifiedWindow / 60).Truncate(time.Second))
}

// Quota is an intent's charge against its subject's usage. It is stored
// with the intent; Limits are the caps Create checks and are not stored.
type Quota struct {
	Subject string `json:"subject"`
	// Reserved is the bytes reserved for the intent while it is pending.
	Reserved int64 `json:"reserved"`
	// BucketSeconds is the width of the verified-bytes bucket its
	// completion adds to.
	BucketSeconds int64       `json:"bucket_seconds,omitempty"`
	Limits        QuotaLimits `json:"-"`
}

// Usage is a subject's Counters in one profile.
type Usage struct {
	Profile  string `json:"profile"`
	Subject  string `json:"subject"`
	Pending  int64  `json:"pending"`
	Reserved int64  `json:"reserved_bytes"`
	// Verified is the bytes verified since Since.
	Verified int64     `json:"verified_bytes"`
	Since    time.Time `json:"verified_since"`
}

// QuotaError is Create's refusal of an intent over one of its caps;
// nothing is stored.
type QuotaError struct {
	// Cap is "max_pending", "max_reserved" or "max_verified".
	Cap   string
	Limit int64
	Usage int64
	// RetryAfter, when positive, is when the cap frees enough room by
	// itself (a verified-bytes bucket leaving the window).
	RetryAfter time.Duration
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("quota exceeded: %s is %d, in use %d", e.Cap, e.Limit, e.Usage)
}

// QuotaStore is what a Store that keeps quota Counters offers besides
// the Store contract; both implementations have it.
type QuotaStore interface {
	// Usage returns the subject's Counters, the verified bytes counted
	// from buckets starting at or after since.
	Usage(ctx context.Context, profile, subject string, since time.Time) (Usage, error)
	// TakeToken takes one token of the key's bucket (capacity n, refilled
	// n per per), and says whether there was one; if not, how long until
	// one frees.
	TakeToken(ctx context.Context, key string, n int, per time.Duration, now time.Time) (bool, time.Duration, error)
}

// Counters is one subject's pending count and reserved bytes.
type Counters struct {
	Pending  int64 `json:"pending"`
	Reserved int64 `json:"reserved"`
}

// CheckQuota decides whether a new intent fits its subject's caps, given
// the current Counters and the verified bytes in the window (oldest is
// the start of the oldest non-empty bucket in the window, for Retry-After).
func CheckQuota(q *Quota, c Counters, verified int64, oldest time.Time, now time.Time) error {
	l := q.Limits
	switch {
	case l.MaxPending > 0 && c.Pending+1 > l.MaxPending:
		return &QuotaError{Cap: "max_pending", Limit: l.MaxPending, Usage: c.Pending}
	case l.MaxReserved > 0 && c.Reserved+q.Reserved > l.MaxReserved:
		return &QuotaError{Cap: "max_reserved", Limit: l.MaxReserved, Usage: c.Reserved}
	case l.MaxVerified > 0 && verified+c.Reserved+q.Reserved > l.MaxVerified:
		e := &QuotaError{Cap: "max_verified", Limit: l.MaxVerified, Usage: verified + c.Reserved}
		if verified > 0 && !oldest.IsZero() {
			e.RetryAfter = max(time.Second, oldest.Add(l.VerifiedWindow+time.Duration(q.BucketSeconds)*time.Second).Sub(now))
		}
		return e
	}
	return nil
}

// bucketStart is the start of the verified-bytes bucket at t.
func bucketStart(t time.Time, seconds int64) int64 {
	if seconds <= 0 {
		seconds = 3600
	}
	s := t.Unix()
	return s - s%seconds
}

// quotaDelta is the change of Counters a transition from pending makes.
// It returns false when the intent carries no charge or stays pending.
func quotaDelta(old, in *Intent) (Counters, int64, bool) {
	if in.Quota == nil || old.Status != StatusPending || in.Status == StatusPending {
		return Counters{}, 0, false
	}
	var verified int64
	if in.Status == StatusCompleted {
		verified = in.ObjectSize
	}
	return Counters{Pending: -1, Reserved: -in.Quota.Reserved}, verified, true
}

// verifiedAt is the time a completion is counted at.
func verifiedAt(in *Intent) time.Time {
	switch {
	case !in.VerifiedAt.IsZero():
		return in.VerifiedAt
	case !in.UpdatedAt.IsZero():
		return in.UpdatedAt
	}
	return time.Now()
}

// TokenBuckets is an in-memory rate limiter: one token bucket per key,
// for one process. Buckets full again are forgotten.
type TokenBuckets struct {
	mu sync.Mutex
	m  map[string]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	at     time.Time
	full   time.Time // when it is full again
}

// Take implements QuotaStore.TakeToken in memory.
func (tb *TokenBuckets) Take(key string, n int, per time.Duration, now time.Time) (bool, time.Duration) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.m == nil {
		tb.m = map[string]*tokenBucket{}
	}
	if len(tb.m) > 4096 {
		for k, b := range tb.m {
			if !now.Before(b.full) {
				delete(tb.m, k)
			}
		}
	}
	b := tb.m[key]
	if b == nil {
		b = &tokenBucket{tokens: float64(n), at: now}
		tb.m[key] = b
	}
	ok, wait, tokens := refill(b.tokens, now.Sub(b.at), n, per)
	b.tokens, b.at = tokens, now
	b.full = now.Add(time.Duration((float64(n) - tokens) / float64(n) * float64(per)))
	return ok, wait
}

// refill adds the tokens elapsed brings (capacity n, n per per) and takes
// one if there is one: whether it did, the wait for the next token when
// not, and the tokens left.
func refill(tokens float64, elapsed time.Duration, n int, per time.Duration) (bool, time.Duration, float64) {
	rate := float64(n) / float64(per) // tokens per nanosecond
	tokens = math.Min(float64(n), tokens+float64(max(0, elapsed))*rate)
	if tokens >= 1 {
		return true, 0, tokens - 1
	}
	return false, time.Duration(math.Ceil((1 - tokens) / rate)), tokens
}

// RetrySeconds is a wait as a Retry-After value: whole seconds, at least 1.
func RetrySeconds(d time.Duration) int64 {
	return max(1, int64(math.Ceil(d.Seconds())))
}

// QuotaChange is what a transition does to its subject's counters:
// Pending and Reserved are added to the counters, Verified to the bucket
// starting at Bucket (Unix seconds).
type QuotaChange struct {
	Counters
	Verified, Bucket int64
}

// QuotaRelease is the change of counters of in's transition from the
// status from; false when there is none (no charge, or not from pending
// to final).
func QuotaRelease(from Status, in *Intent) (QuotaChange, bool) {
	d, verified, ok := quotaDelta(&Intent{Status: from}, in)
	if !ok {
		return QuotaChange{}, false
	}
	return QuotaChange{Counters: d, Verified: verified, Bucket: bucketStart(verifiedAt(in), in.Quota.BucketSeconds)}, true
}

// Refill is the token bucket arithmetic of TakeToken, for stores that keep
// the buckets elsewhere: tokens left at a time elapsed before, capacity n
// refilled n per per. It returns whether a token was taken, the wait for
// the next one when not, and the tokens left.
func Refill(tokens float64, elapsed time.Duration, n int, per time.Duration) (bool, time.Duration, float64) {
	return refill(tokens, elapsed, n, per)
}
