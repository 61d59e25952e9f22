package upload

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// Lifecycle tests: real versitygw and Badger, with the service's clock
// moved instead of sleeping.

func (e *env) pastGrace() { e.advance(e.profile.Expires + e.svc.Grace + time.Second) }

func eventTypes(t *testing.T, db *store.Badger) []string {
	var out []string
	for _, ev := range events(t, db) {
		out = append(out, ev.Type)
	}
	return out
}

func TestSweepFinalizesAbandonedUpload(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	// Before expiry and grace the sweeper decides nothing.
	if in, err := e.svc.Sweep(ctx, e.profile, g.Intent.ID); err != nil || in.Status != store.StatusPending {
		t.Fatalf("early sweep: %+v %v", in, err)
	}
	e.pastGrace()
	in, err := e.svc.Sweep(ctx, e.profile, g.Intent.ID)
	if err != nil || in.Status != store.StatusCompleted || in.ETag == "" || !in.Settled {
		t.Fatalf("sweep: %+v %v", in, err)
	}
	if fmt.Sprint(eventTypes(t, e.db)) != "[upload.completed]" {
		t.Fatalf("events %v", eventTypes(t, e.db))
	}
}

func TestSweepExpiresWhenNothingArrived(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	g := e.grant(t, "image/png", 0)
	e.pastGrace()
	in, err := e.svc.Sweep(context.Background(), e.profile, g.Intent.ID)
	if !errors.Is(err, ErrExpired) || in.Status != store.StatusExpired {
		t.Fatalf("sweep: %+v %v", in, err)
	}
	if fmt.Sprint(eventTypes(t, e.db)) != "[upload.expired]" {
		t.Fatalf("events %v", eventTypes(t, e.db))
	}
}

func TestSweepRejectsAndDeletesDisguisedHTML(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", []byte("<html><script>x</script>"))
	e.pastGrace()
	in, err := e.svc.Sweep(ctx, e.profile, g.Intent.ID)
	if !errors.Is(err, ErrRejected) || in.Status != store.StatusRejected {
		t.Fatalf("sweep: %+v %v", in, err)
	}
	if _, err := e.profile.Objects.Stat(ctx, g.Intent.Key); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("object kept: %v", err)
	}
}

func TestSweepOnExpiryDelete(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	e.profile.OnExpiry = OnExpiryDelete
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	e.pastGrace()
	in, err := e.svc.Sweep(ctx, e.profile, g.Intent.ID)
	if err != nil || in.Status != store.StatusExpired || in.Reason != "not_completed" {
		t.Fatalf("sweep: %+v %v", in, err)
	}
	if _, err := e.profile.Objects.Stat(ctx, g.Intent.Key); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("object kept: %v", err)
	}
}

func TestSweepWithS3DownDecidesNothing(t *testing.T) {
	port, _ := testkit.FreePort()
	e := newEnv(t, fmt.Sprintf("http://127.0.0.1:%d", port))
	g := e.grant(t, "image/png", 0)
	e.pastGrace()
	if _, err := e.svc.Sweep(context.Background(), e.profile, g.Intent.ID); !Retryable(err) {
		t.Fatalf("sweep with S3 down: %v", err)
	}
	in, _ := e.db.Get(context.Background(), g.Intent.ID)
	if in.Status != store.StatusPending || len(events(t, e.db)) != 0 {
		t.Fatalf("decided on an error: %+v", in)
	}
}

// completedThenOverwritten completes an upload, then uses the same,
// still valid policy to replace the object.
func completedThenOverwritten(t *testing.T, e *env, ct string, data []byte) *Grant {
	t.Helper()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	if _, err := e.svc.Complete(context.Background(), e.profile, "alice", g.Intent.ID, nil); err != nil {
		t.Fatal(err)
	}
	if data != nil {
		post(t, g, ct, data)
	}
	return g
}

func TestRecheckCatchesInvalidOverwrite(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	g := completedThenOverwritten(t, e, "image/png", []byte("<svg onload=alert(1)>"))
	in, _ := e.db.Get(ctx, g.Intent.ID)
	if in.Settled {
		t.Fatal("an intent completed before expiry is settled")
	}
	e.pastGrace()
	out, err := e.svc.Recheck(ctx, e.profile, g.Intent.ID, false)
	if err != nil || out.Status != store.StatusRejected || out.Reason != "content_mismatch" || !out.Settled {
		t.Fatalf("recheck: %+v %v", out, err)
	}
	if _, err := e.profile.Objects.Stat(ctx, g.Intent.Key); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("overwritten object kept: %v", err)
	}
	if fmt.Sprint(eventTypes(t, e.db)) != "[upload.completed upload.rejected]" {
		t.Fatalf("events %v", eventTypes(t, e.db))
	}
}

func TestRecheckReportsValidOverwrite(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	other := append(append([]byte{}, pngBytes...), 0, 0, 0, 0)
	g := completedThenOverwritten(t, e, "image/png", other)
	first, _ := e.db.Get(ctx, g.Intent.ID)
	e.pastGrace()
	out, err := e.svc.Recheck(ctx, e.profile, g.Intent.ID, false)
	if err != nil || out.Status != store.StatusCompleted || out.ETag == first.ETag || out.ObjectSize != int64(len(other)) || out.Reason != "overwritten" {
		t.Fatalf("recheck: %+v %v", out, err)
	}
	evs := events(t, e.db)
	if len(evs) != 2 || evs[1].Type != store.EventCompleted || evs[1].Intent.ETag != out.ETag {
		t.Fatalf("events %+v", evs)
	}
}

func TestRecheckUnchangedSettlesWithoutEvent(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	g := completedThenOverwritten(t, e, "", nil)
	e.pastGrace()
	out, err := e.svc.Recheck(ctx, e.profile, g.Intent.ID, false)
	if err != nil || !out.Settled || out.Status != store.StatusCompleted {
		t.Fatalf("recheck: %+v %v", out, err)
	}
	if len(events(t, e.db)) != 1 {
		t.Fatalf("events %v", eventTypes(t, e.db))
	}
	if l, _, _ := e.db.List(ctx, store.ByRecheck, e.clock().Add(time.Hour), nil, 10); len(l) != 0 {
		t.Fatalf("still listed for re-check: %d", len(l))
	}
}

func TestRecheckDeletesOrphanAfterFail(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	if _, err := e.svc.Fail(ctx, e.profile, "alice", g.Intent.ID, "gave up"); err != nil {
		t.Fatal(err)
	}
	post(t, g, "image/png", pngBytes) // the policy still works
	e.pastGrace()
	out, err := e.svc.Recheck(ctx, e.profile, g.Intent.ID, false)
	if err != nil || out.Status != store.StatusFailed || !out.Settled {
		t.Fatalf("recheck: %+v %v", out, err)
	}
	if _, err := e.profile.Objects.Stat(ctx, g.Intent.Key); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("orphan kept: %v", err)
	}
}

func TestPruneAfterDelivery(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	e.pastGrace()
	e.svc.Sweep(ctx, e.profile, g.Intent.ID) // expired, settled
	if err := e.db.Prune(ctx, g.Intent.ID); !errors.Is(err, store.ErrStateChanged) {
		t.Fatalf("pruned with its event undelivered: %v", err)
	}
	in, _ := e.db.Get(ctx, g.Intent.ID)
	if _, err := e.db.SetDelivery(ctx, in.EventID, store.Delivery{State: store.DeliveryDelivered}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Prune(ctx, g.Intent.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Get(ctx, g.Intent.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("intent survived pruning: %v", err)
	}
	if n := len(events(t, e.db)); n != 0 {
		t.Fatalf("%d events survived pruning", n)
	}
}

// TestLargeUploadsGetLongerGrace: S3 checks a policy when the POST starts,
// so a large upload that started just before expiry may land minutes later;
// nothing is decided until it could have.
func TestLargeUploadsGetLongerGrace(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	e.profile.MaxSize = 300 << 20 // 300 s at 1 MiB/s, more than the 60 s grace
	g := e.grant(t, "image/png", 0)
	e.advance(e.profile.Expires + e.svc.Grace + time.Second)
	if in, err := e.svc.Sweep(context.Background(), e.profile, g.Intent.ID); err != nil || in.Status != store.StatusPending {
		t.Fatalf("decided before a 300 MiB upload could have landed: %+v %v", in, err)
	}
	e.advance(300 * time.Second)
	if in, _ := e.svc.Sweep(context.Background(), e.profile, g.Intent.ID); in.Status != store.StatusExpired {
		t.Fatalf("after the longer grace: %+v", in)
	}
}
