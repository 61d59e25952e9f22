package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

// Clock jumps in the service and the sweeper (the fault matrix of issue 9):
// the service's clock (upload.Service.Now, which the sweeper uses too) is
// moved 10 minutes back and forth while a real sweeper runs over a real
// Badger store and a real S3 server (versitygw). Every sweep is called
// directly, so no test waits for a timer.

// jumpClock is a clock a test sets.
type jumpClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *jumpClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// clockEnv is a sweeper over one profile "p" (expires 5m, max 1 KiB, grace
// 1m) whose service runs on clk.
type clockEnv struct {
	ctx     context.Context
	clk     *jumpClock
	t0      time.Time
	db      *store.Badger
	svc     *upload.Service
	profile *upload.Profile
	sw      *sweeper
}

func newClockEnv(t *testing.T) *clockEnv {
	t.Helper()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ctx := context.Background()
	s3, err := testkit.StartVersity(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s3.Stop(5 * time.Second) })
	if err := s3.CreateBucket(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	objs, err := bucket.New(ctx, bucket.Config{Bucket: "uploads", Region: s3.Region, Endpoint: s3.URL,
		PathStyle: true, AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := upload.ParseKeyTemplate("t/{id}{ext}")
	profile := &upload.Profile{Name: "p", Objects: objs, Key: key, MaxSize: 1 << 10, Expires: 5 * time.Minute,
		MaxMetadata: 1024, Allowed: map[string]sniff.Type{"image/png": sniff.TypeOf("image/png")}, OnExpiry: upload.OnExpiryFinalize}
	db, err := store.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	// The clock starts at the real time: S3 checks the presigned policy's
	// expiry (made from this clock) against its own.
	e := &clockEnv{ctx: ctx, clk: &jumpClock{}, t0: time.Now().UTC(), db: db, profile: profile}
	e.clk.Set(e.t0)
	c := &core{db: db}
	c.disp = &webhook.Dispatcher{Store: db, Endpoints: func(string) (*webhook.Endpoint, webhook.Lookup) { return nil, webhook.NoConfig }}
	a := &App{SweepInterval: caddy.Duration(time.Hour), ExpiryGrace: caddy.Duration(time.Minute), Retention: caddy.Duration(24 * time.Hour),
		profiles: map[string]*upload.Profile{"p": profile}}
	e.svc = upload.NewService(db, zap.NewNop())
	e.svc.Grace = time.Minute
	e.svc.Now = e.clk.Now
	a.service.Store(e.svc)
	a.core = c
	c.apps = []*App{a}
	e.sw = &sweeper{c: c, workers: 4}
	e.sw.ctx, e.sw.cancel = context.WithCancel(context.Background())
	t.Cleanup(e.sw.cancel)
	return e
}

// pngData is a small valid PNG; n makes its bytes (and ETag) differ.
func pngData(t *testing.T, n int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 1+n, 1))
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// grant asks for an upload on the clock as it is; with data, the object is
// uploaded with the grant's form.
func (e *clockEnv) grant(t *testing.T, data []byte) *upload.Grant {
	t.Helper()
	g, err := e.svc.Create(e.ctx, e.profile, "alice", upload.CreateRequest{Filename: "x.png", ContentType: "image/png"})
	if err != nil {
		t.Fatal(err)
	}
	if data != nil {
		e.post(t, g, data)
	}
	return g
}

func (e *clockEnv) post(t *testing.T, g *upload.Grant, data []byte) {
	t.Helper()
	if status, body, err := testkit.PostForm(g.URL, g.Fields, "image/png", data); err != nil || status != 201 {
		t.Fatalf("upload: %d %v %s", status, err, body)
	}
}

func (e *clockEnv) get(t *testing.T, id string) *store.Intent {
	t.Helper()
	in, err := e.db.Get(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// events returns the outbox's event types per intent id.
func (e *clockEnv) events(t *testing.T) map[string][]string {
	t.Helper()
	evs, err := e.db.Events(e.ctx, "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, ev := range evs {
		out[ev.Intent.ID] = append(out[ev.Intent.ID], ev.Type)
	}
	return out
}

// settleAt is when an intent of the profile may be decided without its
// client: its policy's expiry plus the grace (1 KiB needs no longer).
func settleAt(in *store.Intent) time.Time { return in.ExpiresAt.Add(time.Minute) }

// TestSweeperClockJumpsPending: pending intents, one with its object
// uploaded and one without. Jumps back (10 minutes before the grant),
// to 1 s before expiry + grace, and back again decide nothing, in the
// sweeper or in the service's own Sweep. A jump forward to 10 minutes
// past expiry + grace makes the sweeper decide each exactly once
// (expired, completed); more sweeps, a jump back and a forward jump again
// change nothing, and the expired intent stays expired.
func TestSweeperClockJumpsPending(t *testing.T) {
	e := newClockEnv(t)
	gone := e.grant(t, nil)             // nothing will arrive
	landed := e.grant(t, pngData(t, 1)) // uploaded, never completed by the client
	settle := settleAt(gone.Intent)     // both granted at t0
	if !settleAt(landed.Intent).Equal(settle) {
		t.Fatalf("the intents' settle times differ: %v, %v", settle, settleAt(landed.Intent))
	}
	ids := []string{gone.Intent.ID, landed.Intent.ID}

	undecided := func(when string) {
		t.Helper()
		if st := e.sw.sweep(); st.Settled != 0 || st.Rechecked != 0 {
			t.Fatalf("%s (clock %v): sweep %+v decided something", when, e.clk.Now().Sub(e.t0), st)
		}
		for _, id := range ids {
			// The service's own check too, whatever the sweeper's listing.
			in, err := e.svc.Sweep(e.ctx, e.profile, id)
			if err != nil || in.Status != store.StatusPending {
				t.Fatalf("%s: Sweep(%s) = %+v, %v; want pending", when, id, in, err)
			}
		}
		if evs := e.events(t); len(evs) != 0 {
			t.Fatalf("%s: events %v", when, evs)
		}
	}
	e.clk.Set(e.t0.Add(-10 * time.Minute))
	undecided("jumped back 10m")
	e.clk.Set(settle.Add(-time.Second))
	undecided("1s before expiry + grace")
	e.clk.Set(settle.Add(-time.Second - 10*time.Minute))
	undecided("jumped back 10m again")

	forward := settle.Add(10 * time.Minute)
	e.clk.Set(forward)
	if st := e.sw.sweep(); st.Settled != 2 {
		t.Fatalf("jumped 10m past expiry + grace: sweep %+v, want 2 settled", st)
	}
	if in := e.get(t, gone.Intent.ID); in.Status != store.StatusExpired || !in.Settled || !in.UpdatedAt.Equal(forward) {
		t.Fatalf("intent without object: %+v; want expired, settled, at the new clock", in)
	}
	if in := e.get(t, landed.Intent.ID); in.Status != store.StatusCompleted || !in.Settled {
		t.Fatalf("intent with object: %+v; want completed and settled", in)
	}
	want := fmt.Sprint(map[string][]string{gone.Intent.ID: {store.EventExpired}, landed.Intent.ID: {store.EventCompleted}})
	if got := fmt.Sprint(e.events(t)); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}

	for _, at := range []time.Time{forward, e.t0.Add(-10 * time.Minute), forward.Add(10 * time.Minute)} {
		e.clk.Set(at)
		if st := e.sw.sweep(); st.Settled != 0 || st.Rechecked != 0 {
			t.Fatalf("clock %v after the decision: sweep %+v", at.Sub(e.t0), st)
		}
		if got := fmt.Sprint(e.events(t)); got != want {
			t.Fatalf("clock %v after the decision: events %s, want %s", at.Sub(e.t0), got, want)
		}
		// An expired intent does not come back when the clock goes back.
		in, err := e.svc.Complete(e.ctx, e.profile, "alice", gone.Intent.ID, nil)
		if !errors.Is(err, upload.ErrExpired) || in.Status != store.StatusExpired {
			t.Fatalf("clock %v: complete of the expired intent = %+v, %v", at.Sub(e.t0), in, err)
		}
	}
}

// TestCompletedNotSettledEarlyUnderClockJumps: a completed intent is
// settled (no more re-checks) only once the injected clock is past its
// expiry + grace. Until then, jumps back and to 1 s before keep it
// unsettled, and an overwrite through the still-valid policy made in that
// window is caught when the clock jumps forward: the sweeper re-checks it
// once and reports the new object.
func TestCompletedNotSettledEarlyUnderClockJumps(t *testing.T) {
	e := newClockEnv(t)
	g := e.grant(t, pngData(t, 1))
	settle := settleAt(g.Intent)
	e.clk.Set(e.t0.Add(time.Minute))
	in, err := e.svc.Complete(e.ctx, e.profile, "alice", g.Intent.ID, nil)
	if err != nil || in.Status != store.StatusCompleted || in.Settled {
		t.Fatalf("complete: %+v, %v; want completed, not settled", in, err)
	}
	first := in.ETag
	// Completed while the clock is 10 minutes behind: not settled either.
	e.clk.Set(e.t0)
	back := e.grant(t, pngData(t, 2))
	e.clk.Set(e.t0.Add(-10 * time.Minute))
	if in, err := e.svc.Complete(e.ctx, e.profile, "alice", back.Intent.ID, nil); err != nil || in.Settled {
		t.Fatalf("complete with the clock jumped back: %+v, %v; want not settled", in, err)
	}

	for _, at := range []time.Time{e.t0.Add(-10 * time.Minute), settle.Add(-time.Second), settle.Add(-time.Second - 10*time.Minute)} {
		e.clk.Set(at)
		if st := e.sw.sweep(); st.Rechecked != 0 || st.Settled != 0 {
			t.Fatalf("clock %v: sweep %+v decided something", at.Sub(e.t0), st)
		}
		if in, err := e.svc.Recheck(e.ctx, e.profile, g.Intent.ID, false); err != nil || in.Settled {
			t.Fatalf("clock %v: recheck %+v, %v; want not settled", at.Sub(e.t0), in, err)
		}
	}
	// Meanwhile (real time is still within the policy) the object is
	// replaced through the same form.
	e.post(t, g, pngData(t, 3))

	e.clk.Set(settle.Add(10 * time.Minute))
	if st := e.sw.sweep(); st.Rechecked != 2 {
		t.Fatalf("jumped 10m past expiry + grace: sweep %+v, want 2 rechecked", st)
	}
	in = e.get(t, g.Intent.ID)
	if in.Status != store.StatusCompleted || !in.Settled || in.ETag == first || in.Reason != string(upload.ReasonOverwritten) {
		t.Fatalf("after the jump forward: %+v; want the replacement reported and settled", in)
	}
	if in := e.get(t, back.Intent.ID); !in.Settled {
		t.Fatalf("the other completed intent: %+v; want settled", in)
	}
	want := fmt.Sprint(map[string][]string{g.Intent.ID: {store.EventCompleted, store.EventCompleted}, back.Intent.ID: {store.EventCompleted}})
	if got := fmt.Sprint(e.events(t)); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	for _, at := range []time.Time{e.t0.Add(-10 * time.Minute), settle.Add(20 * time.Minute)} {
		e.clk.Set(at)
		if st := e.sw.sweep(); st.Rechecked != 0 || st.Settled != 0 {
			t.Fatalf("clock %v after settling: sweep %+v", at.Sub(e.t0), st)
		}
		if in := e.get(t, g.Intent.ID); !in.Settled {
			t.Fatalf("clock %v: settled intent unsettled again: %+v", at.Sub(e.t0), in)
		}
	}
	if got := fmt.Sprint(e.events(t)); got != want {
		t.Fatalf("events at the end %s, want %s", got, want)
	}
}
