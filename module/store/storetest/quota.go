package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// RunQuota runs the quota cases of the contract (store.QuotaStore) on
// stores from open. reopen closes a store and opens the same data again,
// as a restart after a crash would.
func RunQuota(t *testing.T, open func(t *testing.T) store.Store, reopen func(t *testing.T, db store.Store) store.Store) {
	q := quotaSuite{open: open, reopen: reopen}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"ConcurrentCreatesNeverExceedPending", q.concurrentPending},
		{"ConcurrentCreatesNeverExceedReserved", q.concurrentReserved},
		{"ReleasedOnFailExpireReject", q.release},
		{"ReplacedOnComplete", q.complete},
		{"ReopenKeepsCountersConsistent", q.reopenConsistent},
		{"TokenBucket", q.tokens},
	} {
		t.Run(tc.name, tc.fn)
	}
}

type quotaSuite struct {
	open   func(t *testing.T) store.Store
	reopen func(t *testing.T, db store.Store) store.Store
}

func (q quotaSuite) db(t *testing.T) (store.Store, store.QuotaStore) {
	t.Helper()
	db := q.open(t)
	t.Cleanup(func() { db.Close() })
	qs, ok := db.(store.QuotaStore)
	if !ok {
		t.Fatalf("%T does not implement store.QuotaStore", db)
	}
	return db, qs
}

// charged is a pending intent of subject charged reserved bytes.
func charged(id, subject string, reserved int64, l store.QuotaLimits) *store.Intent {
	in := pending(id, time.Now().Add(time.Hour).UTC())
	in.Quota = &store.Quota{Subject: subject, Reserved: reserved, BucketSeconds: 60, Limits: l}
	return in
}

// finish moves an intent from pending to status; a completion records
// size verified now.
func finish(status store.Status, evID string, size int64) store.Transition {
	return func(in *store.Intent) (store.Event, error) {
		now := time.Now().UTC()
		ev, err := to(status, evID, now)(in)
		if status == store.StatusCompleted {
			in.ObjectSize, in.VerifiedAt = size, now
		}
		return ev, err
	}
}

func wantUsage(t *testing.T, qs store.QuotaStore, subject string, pending, reserved, verified int64) {
	t.Helper()
	u, err := qs.Usage(ctxT(t), "p", subject, time.Now().Add(-time.Hour))
	must(t, err)
	if u.Pending != pending || u.Reserved != reserved || u.Verified != verified {
		t.Fatalf("usage of %s: pending %d reserved %d verified %d, want %d %d %d",
			subject, u.Pending, u.Reserved, u.Verified, pending, reserved, verified)
	}
}

func wantQuotaErr(t *testing.T, err error, cap string) *store.QuotaError {
	t.Helper()
	var qe *store.QuotaError
	if !errors.As(err, &qe) || qe.Cap != cap {
		t.Fatalf("create: %v, want a %s refusal", err, cap)
	}
	return qe
}

// concurrentCreates creates n intents of subject at once and returns how
// many were stored; every other one must be refused over cap.
func concurrentCreates(t *testing.T, db store.Store, n int, subject string, reserved int64, l store.QuotaLimits, cap string) int {
	t.Helper()
	ctx := ctxT(t)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Create(ctx, charged(fmt.Sprintf("%s-%03d", subject, i), subject, reserved, l))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		wantQuotaErr(t, err, cap)
	}
	return ok
}

func (q quotaSuite) concurrentPending(t *testing.T) {
	db, qs := q.db(t)
	l := store.QuotaLimits{MaxPending: 7}
	if ok := concurrentCreates(t, db, 50, "alice", 10, l, "max_pending"); ok != 7 {
		t.Fatalf("%d of 50 concurrent creates stored at max_pending 7, want exactly 7", ok)
	}
	wantUsage(t, qs, "alice", 7, 70, 0)
	// Another subject is not affected.
	must(t, db.Create(ctxT(t), charged("bob-1", "bob", 10, l)))
	wantUsage(t, qs, "bob", 1, 10, 0)
}

func (q quotaSuite) concurrentReserved(t *testing.T) {
	db, qs := q.db(t)
	l := store.QuotaLimits{MaxReserved: 100}
	if ok := concurrentCreates(t, db, 40, "carol", 30, l, "max_reserved"); ok != 3 {
		t.Fatalf("%d of 40 concurrent creates of 30 bytes stored at max_reserved 100, want exactly 3", ok)
	}
	wantUsage(t, qs, "carol", 3, 90, 0)
}

func (q quotaSuite) release(t *testing.T) {
	db, qs := q.db(t)
	ctx := ctxT(t)
	l := store.QuotaLimits{MaxPending: 3, MaxReserved: 1000}
	for _, id := range []string{"r1", "r2", "r3"} {
		must(t, db.Create(ctx, charged(id, "dave", 100, l)))
	}
	wantQuotaErr(t, db.Create(ctx, charged("r4", "dave", 100, l)), "max_pending")
	wantUsage(t, qs, "dave", 3, 300, 0)
	steps := []struct {
		id     string
		status store.Status
	}{{"r1", store.StatusFailed}, {"r2", store.StatusExpired}, {"r3", store.StatusRejected}}
	for i, st := range steps {
		_, err := db.Update(ctx, st.id, store.StatusPending, finish(st.status, "ev-"+st.id, 0))
		must(t, err)
		wantUsage(t, qs, "dave", int64(2-i), int64(200-100*i), 0)
	}
	// A transition that is refused (the status changed) releases nothing twice.
	if _, err := db.Update(ctx, "r1", store.StatusPending, finish(store.StatusFailed, "ev-again", 0)); !errors.Is(err, store.ErrStateChanged) {
		t.Fatalf("second fail: %v, want ErrStateChanged", err)
	}
	wantUsage(t, qs, "dave", 0, 0, 0)
	must(t, db.Create(ctx, charged("r5", "dave", 100, l)))
	wantUsage(t, qs, "dave", 1, 100, 0)
}

func (q quotaSuite) complete(t *testing.T) {
	db, qs := q.db(t)
	ctx := ctxT(t)
	l := store.QuotaLimits{MaxVerified: 20, VerifiedWindow: time.Hour}
	must(t, db.Create(ctx, charged("c1", "erin", 10, l)))
	must(t, db.Create(ctx, charged("c2", "erin", 10, l)))
	// Reserved bytes count toward the verified cap: 10 + 10 + 10 > 20.
	qe := wantQuotaErr(t, db.Create(ctx, charged("c3", "erin", 10, l)), "max_verified")
	if qe.RetryAfter != 0 {
		t.Fatalf("retry after %v with nothing verified yet, want none", qe.RetryAfter)
	}
	// Completion replaces the reservation by the verified size.
	_, err := db.Update(ctx, "c1", store.StatusPending, finish(store.StatusCompleted, "ev-c1", 6))
	must(t, err)
	wantUsage(t, qs, "erin", 1, 10, 6)
	qe = wantQuotaErr(t, db.Create(ctx, charged("c3", "erin", 10, l)), "max_verified")
	if qe.RetryAfter <= 0 || qe.RetryAfter > time.Hour+2*time.Minute {
		t.Fatalf("retry after %v, want when the bucket leaves the hour's window", qe.RetryAfter)
	}
	_, err = db.Update(ctx, "c2", store.StatusPending, finish(store.StatusCompleted, "ev-c2", 3))
	must(t, err)
	wantUsage(t, qs, "erin", 0, 0, 9)
	must(t, db.Create(ctx, charged("c3", "erin", 10, l))) // 9 + 10 <= 20
	wantUsage(t, qs, "erin", 1, 10, 9)
}

func (q quotaSuite) reopenConsistent(t *testing.T) {
	db := q.open(t)
	ctx := ctxT(t)
	l := store.QuotaLimits{MaxPending: 4}
	for i := range 4 {
		must(t, db.Create(ctx, charged(fmt.Sprintf("k%d", i), "fred", 5, l)))
	}
	_, err := db.Update(ctx, "k0", store.StatusPending, finish(store.StatusCompleted, "ev-k0", 4))
	must(t, err)
	_, err = db.Update(ctx, "k1", store.StatusPending, finish(store.StatusFailed, "ev-k1", 0))
	must(t, err)
	db = q.reopen(t, db)
	t.Cleanup(func() { db.Close() })
	qs := db.(store.QuotaStore)
	wantUsage(t, qs, "fred", 2, 10, 4)
	// The counters equal what the stored intents add up to.
	pend, _, err := db.ListStatus(ctx, store.StatusPending, "p", nil, 100)
	must(t, err)
	var reserved int64
	for _, in := range pend {
		reserved += in.Quota.Reserved
	}
	if len(pend) != 2 || reserved != 10 {
		t.Fatalf("stored: %d pending intents reserving %d, counters say 2 and 10", len(pend), reserved)
	}
	// The caps still hold after the restart.
	must(t, db.Create(ctx, charged("k4", "fred", 5, l)))
	must(t, db.Create(ctx, charged("k5", "fred", 5, l)))
	wantQuotaErr(t, db.Create(ctx, charged("k6", "fred", 5, l)), "max_pending")
}

func (q quotaSuite) tokens(t *testing.T) {
	_, qs := q.db(t)
	ctx := ctxT(t)
	now := time.Now()
	for i := range 3 {
		ok, _, err := qs.TakeToken(ctx, "p/gina", 3, time.Minute, now)
		must(t, err)
		if !ok {
			t.Fatalf("token %d refused, want 3 in the bucket", i+1)
		}
	}
	ok, wait, err := qs.TakeToken(ctx, "p/gina", 3, time.Minute, now)
	must(t, err)
	if ok || wait <= 0 || wait > 20*time.Second {
		t.Fatalf("fourth token: ok %v wait %v, want refused with a wait of at most 20s", ok, wait)
	}
	if ok, _, err := qs.TakeToken(ctx, "p/hank", 3, time.Minute, now); err != nil || !ok {
		t.Fatalf("another key: ok %v err %v, want a token", ok, err)
	}
	ok, _, err = qs.TakeToken(ctx, "p/gina", 3, time.Minute, now.Add(wait))
	must(t, err)
	if !ok {
		t.Fatal("refused after the announced wait")
	}
}
