package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

// expiredIntent is a pending intent of profile p whose policy expired at exp.
func expiredIntent(id string, exp time.Time, maxSize int64) *store.Intent {
	return &store.Intent{ID: id, Profile: "p", Bucket: "uploads", Key: "t/" + id + ".png", ContentType: "image/png",
		MaxSize: maxSize, Status: store.StatusPending, CreatedAt: exp.Add(-time.Minute), ExpiresAt: exp, UpdatedAt: exp}
}

// adminGet answers a GET of the admin API's intent listing for app.
func adminGet(t *testing.T, a *App, db store.Store, query string) (int, map[string]json.RawMessage) {
	t.Helper()
	rec := httptest.NewRecorder()
	status := http.StatusOK
	req := httptest.NewRequest(http.MethodGet, "/direct_upload/intents?"+query, nil)
	if err := serveIntents(rec, req, a, db, nil, 100); err != nil {
		status = http.StatusInternalServerError
		if ae, ok := err.(caddy.APIError); ok {
			status = ae.HTTPStatus
		}
		return status, nil
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("admin answer %q: %v", rec.Body.String(), err)
	}
	return status, out
}

// TestDamagedIntentDoesNotStopSweeperOrAdmin: with one intent whose record
// does not decode (real Badger on disk), the admin listing answers 200 with
// the others and the damaged id, and the sweeper settles the others
// (against a real S3 server).
func TestDamagedIntentDoesNotStopSweeperOrAdmin(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	s3, err := testkit.StartVersity(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Stop(5 * time.Second)
	ctx := context.Background()
	if err := s3.CreateBucket(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	objs, err := bucket.New(ctx, bucket.Config{Bucket: "uploads", Region: s3.Region, Endpoint: s3.URL,
		PathStyle: true, AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := upload.ParseKeyTemplate("t/{id}{ext}")
	profile := &upload.Profile{Name: "p", Objects: objs, Key: key, MaxSize: 1 << 10, Expires: time.Minute,
		MaxMetadata: 1024, Allowed: map[string]sniff.Type{"image/png": sniff.TypeOf("image/png")}, OnExpiry: upload.OnExpiryFinalize}

	db, err := store.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exp := time.Now().Add(-time.Hour).UTC()
	var ids []string
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("in%d", i)
		ids = append(ids, id)
		if err := db.Create(ctx, expiredIntent(id, exp, 1<<10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.WriteRawIntent(db, "in2", []byte(`{"id":"in2","status":"pend`)); err != nil {
		t.Fatal(err)
	}

	c := &core{db: db}
	c.disp = &webhook.Dispatcher{Store: db, Endpoints: func(string) (*webhook.Endpoint, webhook.Lookup) { return nil, webhook.NoConfig }}
	a := &App{SweepInterval: caddy.Duration(time.Hour), Retention: caddy.Duration(time.Hour), profiles: map[string]*upload.Profile{"p": profile}}
	svc := upload.NewService(db, zap.NewNop())
	svc.Grace = 0
	a.service.Store(svc)
	a.core = c
	c.apps = []*App{a}
	sw := &sweeper{c: c, workers: 4}
	sw.ctx, sw.cancel = context.WithCancel(context.Background())
	defer sw.cancel()

	status, body := adminGet(t, a, db, "status=pending")
	if status != http.StatusOK {
		t.Fatalf("admin listing answered %d", status)
	}
	var listed []store.Intent
	var damaged []string
	json.Unmarshal(body["intents"], &listed)
	json.Unmarshal(body["damaged"], &damaged)
	if len(listed) != 4 || fmt.Sprint(damaged) != "[in2]" {
		t.Fatalf("admin listing: %d intents, damaged %v", len(listed), damaged)
	}

	st := sw.sweep()
	if st.Settled != 4 {
		t.Fatalf("sweep: %+v, want 4 settled", st)
	}
	for _, id := range ids {
		if id == "in2" {
			continue
		}
		if in, err := db.Get(ctx, id); err != nil || in.Status != store.StatusExpired {
			t.Fatalf("%s after sweep: %+v, %v", id, in, err)
		}
	}
	if status, body = adminGet(t, a, db, "status=expired"); status != http.StatusOK {
		t.Fatalf("admin listing of expired answered %d", status)
	}
	json.Unmarshal(body["intents"], &listed)
	if len(listed) != 4 {
		t.Fatalf("%d expired intents listed", len(listed))
	}
}

// TestReloadMovesLoggersAndSweepCountsOnlySettled: after a second config
// starts on the same store (a reload), the store and the sweeper log to its
// logger; and an intent listed by the sweep but not yet due (a large
// upload's longer grace) is counted as waiting, not settled.
func TestReloadMovesLoggersAndSweepCountsOnlySettled(t *testing.T) {
	dir := t.TempDir()
	db, err := store.OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Expired 2 minutes ago, past the 1-minute grace, but 1 GiB may take
	// 17 minutes to arrive: not due yet.
	if err := db.Create(context.Background(), expiredIntent("big", time.Now().Add(-2*time.Minute).UTC(), 1<<30)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	newApp := func(core zapcore.Core) *App {
		return &App{Storage: dir, opener: &BadgerStore{Path: dir}, SweepInterval: caddy.Duration(time.Hour), ExpiryGrace: caddy.Duration(time.Minute),
			Retention: caddy.Duration(time.Hour), logger: zap.New(core),
			profiles: map[string]*upload.Profile{"p": {Name: "p"}}, webhooks: map[string]*webhook.Endpoint{}}
	}
	firstCore, _ := observer.New(zapcore.InfoLevel)
	first := newApp(firstCore)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Stop()
	secondCore, second := observer.New(zapcore.InfoLevel)
	reloaded := newApp(secondCore)
	if err := reloaded.Start(); err != nil { // kicks a sweep
		t.Fatal(err)
	}
	defer reloaded.Stop()
	// A damaged record found from now on is logged to the new logger.
	bdb := any(reloaded.core.db).(*store.Badger)
	if err := bdb.Create(context.Background(), expiredIntent("bad", time.Now().UTC(), 1)); err != nil {
		t.Fatal(err)
	}
	if err := store.WriteRawIntent(bdb, "bad", []byte(`{`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bdb.ListStatus(context.Background(), store.StatusPending, "", nil, 10); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for second.FilterMessage("sweep done").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no sweep logged to the reloaded config's logger; it got %d lines", second.Len())
		}
		time.Sleep(10 * time.Millisecond)
	}
	fields := second.FilterMessage("sweep done").All()[0].ContextMap()
	if fields["settled"] != int64(0) || fields["waiting"] != int64(1) {
		t.Fatalf("sweep logged %v: the intent not yet due counted as settled", fields)
	}
	if second.FilterField(zap.String("id", "bad")).Len() != 1 {
		t.Fatal("the store did not log the damaged record to the reloaded config's logger")
	}
}
