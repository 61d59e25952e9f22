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

// listed is every pending intent of the expiry index, as the sweeper
// lists them, with the env's profile.
func (e *env) listed(t *testing.T) []SweepItem {
	t.Helper()
	page, _, err := e.db.List(context.Background(), store.ByExpiry, e.clock().Add(24*time.Hour), nil, 1000)
	if err != nil {
		t.Fatal(err)
	}
	items := make([]SweepItem, len(page))
	for i, in := range page {
		items[i] = SweepItem{In: in, Profile: e.profile}
	}
	return items
}

// TestSweepPageAsSweepWould sweeps a page holding every case and checks
// each ends as Sweep ends it: nothing arrived (expired, batched, the same
// record and event as Sweep's), a valid object (completed), a disguised
// one (rejected), one not due yet (left pending), and one whose listed
// copy is stale (a rejection decided after the listing: rejected, not
// expired).
func TestSweepPageAsSweepWould(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	var events0 []string
	e.svc.OnEvent = func(id string) { events0 = append(events0, id) }
	none := e.grant(t, "image/png", 0)
	viaSweep := e.grant(t, "image/png", 0)
	valid := e.grant(t, "image/png", 0)
	post(t, valid, "image/png", pngBytes)
	html := e.grant(t, "image/png", 0)
	post(t, html, "image/png", []byte("<html><script>x</script>"))
	stale := e.grant(t, "image/png", 0)
	e.pastGrace()
	early := e.grant(t, "image/png", 0)

	want, err := e.svc.Sweep(ctx, e.profile, viaSweep.Intent.ID)
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("Sweep: %+v, %v", want, err)
	}
	items := e.listed(t)
	if len(items) != 5 {
		t.Fatalf("listed %d intents, want 5", len(items))
	}
	if _, err := e.db.Annotate(ctx, stale.Intent.ID, store.StatusPending, func(x *store.Intent) {
		x.Rejecting, x.Reason, x.Detail = true, string(ReasonForeignObject), "decided after the listing"
	}); err != nil {
		t.Fatal(err)
	}
	e.svc.SweepPage(ctx, items, 3, time.Minute)

	got := map[string]SweepItem{}
	for _, it := range items {
		got[it.In.ID] = it
	}
	check := func(id string, status store.Status, wantErr error) *store.Intent {
		t.Helper()
		it := got[id]
		if it.Out == nil || it.Out.Status != status || !errors.Is(it.Err, wantErr) || (wantErr == nil) != (it.Err == nil) {
			t.Errorf("%s: %+v, %v; want %s, %v", id, it.Out, it.Err, status, wantErr)
			return nil
		}
		stored, err := e.db.Get(ctx, id)
		if err != nil || stored.Status != status {
			t.Errorf("%s stored as %+v, %v", id, stored, err)
		}
		return it.Out
	}
	if out := check(none.Intent.ID, store.StatusExpired, ErrExpired); out != nil {
		if out.Reason != want.Reason || out.Detail != want.Detail || out.Settled != want.Settled || !out.Settled ||
			!out.UpdatedAt.Equal(want.UpdatedAt) || out.ObjectSize != 0 || out.ETag != "" || len(out.Events) != 1 {
			t.Errorf("batched expiry %+v\nSweep's %+v", out, want)
		}
		ev, err := e.db.Event(ctx, out.EventID)
		if err != nil || ev.Type != store.EventExpired || ev.Intent.Status != store.StatusExpired {
			t.Errorf("event %+v, %v", ev, err)
		}
	}
	check(valid.Intent.ID, store.StatusCompleted, nil)
	check(html.Intent.ID, store.StatusRejected, ErrRejected)
	if out := check(stale.Intent.ID, store.StatusRejected, ErrRejected); out != nil && out.Reason != string(ReasonForeignObject) {
		t.Errorf("stale intent's reason %q", out.Reason)
	}
	check(early.Intent.ID, store.StatusPending, nil)
	if fmt.Sprint(len(events0)) != "5" || len(events(t, e.db)) != 5 { // Sweep's, and four of the page's
		t.Errorf("%d events announced, %d stored; want 5", len(events0), len(events(t, e.db)))
	}
	if _, err := e.profile.Objects.Stat(ctx, html.Intent.Key); !errors.Is(err, bucket.ErrNotFound) {
		t.Errorf("rejected object kept: %v", err)
	}
	if n := e.svc.Locks.held(); n != 0 {
		t.Errorf("%d locks held after the page", n)
	}
}

// TestSweepPageS3FailureDecidesNothing: an S3 server that does not answer
// and a bucket that does not exist both leave every intent pending, with a
// retryable error and no event.
func TestSweepPageS3FailureDecidesNothing(t *testing.T) {
	port, _ := testkit.FreePort()
	down := newEnv(t, fmt.Sprintf("http://127.0.0.1:%d", port))
	missing := newEnv(t, s3srv.URL)
	objs, err := bucket.New(context.Background(), bucket.Config{
		Bucket: "no-such-bucket", Region: s3srv.Region, Endpoint: s3srv.URL, PathStyle: true,
		AccessKeyID: s3srv.AccessKey, SecretAccessKey: s3srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	missing.profile.Objects = objs
	for name, e := range map[string]*env{"S3 down": down, "missing bucket": missing} {
		g := e.grant(t, "image/png", 0)
		e.pastGrace()
		items := e.listed(t)
		e.svc.SweepPage(context.Background(), items, 2, time.Minute)
		if len(items) != 1 || !Retryable(items[0].Err) {
			t.Errorf("%s: %+v", name, items)
		}
		in, _ := e.db.Get(context.Background(), g.Intent.ID)
		if in.Status != store.StatusPending || len(events(t, e.db)) != 0 {
			t.Errorf("%s: decided on an error: %+v", name, in)
		}
	}
}
