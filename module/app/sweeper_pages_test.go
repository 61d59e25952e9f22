package app

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

// TestSweepManyPages sweeps expired intents over several pages (the next
// page's objects are looked at while the previous page's expiries are
// written), on versitygw and Badger: every intent is settled once, those
// whose object arrived are completed (not expired), each has one event,
// and the expiry index is empty after the pass.
func TestSweepManyPages(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	const n = 2*sweepPage + 57
	v, err := testkit.StartVersity(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Stop(5 * time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := v.CreateBucket(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	objs, err := bucket.New(ctx, bucket.Config{Bucket: "uploads", Region: v.Region, Endpoint: v.URL,
		PathStyle: true, AccessKeyID: v.AccessKey, SecretAccessKey: v.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := upload.ParseKeyTemplate("t/{id}{ext}")
	profile := &upload.Profile{Name: "p", Objects: objs, Key: key, MaxSize: 1 << 20, Expires: time.Minute,
		MaxMetadata: 1024, Allowed: map[string]sniff.Type{"image/png": sniff.TypeOf("image/png")}, OnExpiry: upload.OnExpiryFinalize}

	db, err := store.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde")
	past := time.Now().Add(-time.Hour).UTC()
	arrived := map[string]bool{}
	for i := range n {
		id := upload.NewID()
		in := &store.Intent{ID: id, Profile: "p", Bucket: "uploads", Key: "t/" + id + ".png", ContentType: "image/png",
			MaxSize: 1 << 20, Status: store.StatusPending, CreatedAt: past.Add(-time.Minute), ExpiresAt: past, UpdatedAt: past}
		if err := db.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
		if i%100 == 7 { // a few, spread over the pages, did arrive
			arrived[id] = true
			if _, err := v.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("uploads"), Key: aws.String(in.Key),
				Body: bytes.NewReader(png), ContentType: aws.String("image/png"), Metadata: map[string]string{upload.MetaIntentID: id}}); err != nil {
				t.Fatal(err)
			}
		}
	}

	c := &core{db: db}
	c.disp = &webhook.Dispatcher{Store: db, Endpoints: func(string) (*webhook.Endpoint, webhook.Lookup) { return nil, webhook.NoConfig }}
	a := &App{SweepInterval: 1 << 62, Retention: 1 << 62, profiles: map[string]*upload.Profile{"p": profile}}
	svc := upload.NewService(db, zap.NewNop())
	svc.Grace = 0
	a.service.Store(svc)
	a.core = c
	c.apps = []*App{a}
	sw := &sweeper{c: c, workers: 8}
	sw.ctx, sw.cancel = context.WithCancel(context.Background())
	defer sw.cancel()

	if st := sw.sweep(); st.Settled != n || st.Deferred != 0 || st.Waiting != 0 {
		t.Fatalf("sweep: %+v, want %d settled", st, n)
	}
	left, _, err := db.List(ctx, store.ByExpiry, time.Now(), nil, 10)
	if err != nil || len(left) != 0 {
		t.Fatalf("still pending: %d, %v", len(left), err)
	}
	evs, err := db.Events(ctx, "", "", 10*n)
	if err != nil || len(evs) != n {
		t.Fatalf("%d events, %v; want %d", len(evs), err, n)
	}
	seen := map[string]bool{}
	for _, ev := range evs {
		if seen[ev.Intent.ID] {
			t.Errorf("two events for %s", ev.Intent.ID)
		}
		seen[ev.Intent.ID] = true
		want := store.EventExpired
		if arrived[ev.Intent.ID] {
			want = store.EventCompleted
		}
		if ev.Type != want {
			t.Errorf("%s: event %s, want %s", ev.Intent.ID, ev.Type, want)
		}
	}
	if st := sw.sweep(); st != (SweepStats{}) {
		t.Errorf("second pass: %+v, want nothing to do", st)
	}
}
