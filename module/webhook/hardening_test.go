package webhook

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// loadDue writes n events of profile, pending and due since created, into
// the store at dir (unsynced: test data only), and closes it.
func loadDue(t *testing.T, dir, profile string, n int, created time.Time) {
	t.Helper()
	db, err := store.OpenBadgerUnsynced(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				id := fmt.Sprintf("%s-%06d", profile, i)
				in := &store.Intent{ID: id, Profile: profile, Bucket: "b", Key: "k/" + id, ContentType: "image/png", MaxSize: 10,
					Status: store.StatusPending, CreatedAt: created, ExpiresAt: created.Add(time.Minute)}
				if err := db.Create(ctx, in); err != nil {
					errs <- err
					return
				}
				if _, err := db.Update(ctx, id, store.StatusPending, func(x *store.Intent) (store.Event, error) {
					x.Status = store.StatusCompleted
					return store.Event{ID: "evt_" + id, Type: store.EventCompleted, CreatedAt: created.Add(time.Duration(i))}, nil
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestBacklogOfHangingEndpointDoesNotStarveOthers: with 10,000 events due
// for an endpoint that never answers (all due before anything else), an
// event of a healthy endpoint is still delivered promptly, while the
// hanging endpoint is still saturated with its share of attempts.
func TestBacklogOfHangingEndpointDoesNotStarveOthers(t *testing.T) {
	release := make(chan struct{})
	var hanging atomic.Int64
	hang := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		hanging.Add(1)
		defer hanging.Add(-1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	fast := newReceiver(t, nil)
	dir := t.TempDir()
	loadDue(t, dir, "slow", 10_000, time.Now().UTC().Add(-time.Hour))

	slowEP := endpoint(hang.srv.URL, 0, time.Hour)
	slowEP.Timeout = time.Minute
	db, err := store.OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, eps: map[string]*Endpoint{"slow": slowEP, "fast": endpoint(fast.srv.URL)}}
	f.disp = &Dispatcher{Store: db, Poll: 20 * ms, MaxInFlight: 64, PerEndpoint: 16,
		Endpoints: func(p string) (*Endpoint, Lookup) { return f.eps[p], Ready }}
	f.disp.Start()
	t.Cleanup(func() { close(release); f.disp.Stop(5 * time.Second); db.Close() })

	deadline := time.Now().Add(10 * time.Second)
	for hanging.Load() < 16 {
		if time.Now().After(deadline) {
			t.Fatalf("hanging endpoint got %d attempts in flight, want 16", hanging.Load())
		}
		time.Sleep(5 * ms)
	}
	id := f.complete(t, "fast")
	f.waitState(t, id, store.DeliveryDelivered, 3*time.Second)
	if n := hanging.Load(); n != 16 {
		t.Fatalf("hanging endpoint no longer saturated (%d in flight): the test proves nothing", n)
	}
	if len(fast.deliveries()) != 1 {
		t.Fatalf("fast endpoint: %d requests", len(fast.deliveries()))
	}
}

// TestRedeliveryDuringAttemptKept: an operator's redelivery requested while
// an attempt is in flight is not overwritten by that attempt's record: the
// event is attempted again and delivered.
func TestRedeliveryDuringAttemptKept(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 0 {
			close(started)
			<-release
			w.WriteHeader(http.StatusGone) // would make the event dead
		}
	})
	f := newFixture(t, map[string]*Endpoint{"p": endpoint(rc.srv.URL, 0, time.Hour)}, nil)
	id := f.complete(t, "p")
	<-started
	if _, err := f.disp.Redeliver(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	close(release)
	ev := f.waitState(t, id, store.DeliveryDelivered, 5*time.Second)
	if n := len(rc.deliveries()); n != 2 || ev.Delivery.Attempts != 1 {
		t.Fatalf("%d requests, %d attempts recorded; want 2 and 1 (after the redelivery)", n, ev.Delivery.Attempts)
	}
}

// TestSetLoggerReplacesLogger: after SetLogger (a reload), the dispatcher
// logs to the new logger only.
func TestSetLoggerReplacesLogger(t *testing.T) {
	rc := newReceiver(t, nil)
	firstCore, first := observer.New(zapcore.InfoLevel)
	f := newFixture(t, map[string]*Endpoint{"p": endpoint(rc.srv.URL)}, func(d *Dispatcher) { d.Logger = zap.New(firstCore) })
	newCore, newer := observer.New(zapcore.InfoLevel)
	f.disp.SetLogger(zap.New(newCore))
	id := f.complete(t, "p")
	f.waitState(t, id, store.DeliveryDelivered, 5*time.Second)
	if newer.FilterMessage("webhook delivered").Len() != 1 || first.Len() != 0 {
		t.Fatalf("new logger got %d lines, first logger %d", newer.Len(), first.Len())
	}
}

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// waitPasses kicks the dispatcher and waits until it has looked at the due
// index at least n more times: work it was going to do has been done.
func waitPasses(t *testing.T, d *Dispatcher, n int64) {
	t.Helper()
	target := d.passes.Load() + n
	deadline := time.Now().Add(5 * time.Second)
	for d.passes.Load() < target {
		if time.Now().After(deadline) {
			t.Fatal("dispatcher made no pass")
		}
		d.Kick()
		time.Sleep(2 * ms)
	}
}

// TestClockJumps: the dispatcher decides on its clock. After the clock
// jumps back 10 minutes, retries keep their spacing (nothing is sent before
// its next attempt on the new clock, no burst); after it jumps forward 10
// minutes, every event waiting for a retry is delivered once, none lost.
func TestClockJumps(t *testing.T) {
	var ok atomic.Bool
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if !ok.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	t0 := time.Now().UTC().Add(time.Minute)
	clk := &fakeClock{t: t0}
	f := newFixture(t, map[string]*Endpoint{"p": endpoint(rc.srv.URL, 0, time.Minute, time.Minute, time.Minute)}, func(d *Dispatcher) {
		d.Now = clk.Now
	})
	var ids []string
	for i := 0; i < 20; i++ {
		ids = append(ids, f.complete(t, "p"))
	}
	attempts := func(id string) store.Delivery {
		ev, err := f.db.Event(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return ev.Delivery
	}
	for _, id := range ids {
		deadline := time.Now().Add(5 * time.Second)
		for attempts(id).Attempts < 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s never attempted", id)
			}
			time.Sleep(5 * ms)
		}
		if dl := attempts(id); dl.NextAttemptAt.Sub(dl.LastAttemptAt) < 54*time.Second {
			t.Fatalf("%s: retry %v after the attempt", id, dl.NextAttemptAt.Sub(dl.LastAttemptAt))
		}
	}

	// Back 10 minutes: nothing is due, nothing is sent.
	clk.Set(t0.Add(-10 * time.Minute))
	waitPasses(t, f.disp, 3)
	clk.Set(t0.Add(-10*time.Minute + 50*time.Second))
	waitPasses(t, f.disp, 3)
	if n := len(rc.deliveries()); n != len(ids) {
		t.Fatalf("%d requests after the clock went back, want %d (one each)", n, len(ids))
	}

	// Forward 10 minutes past the original time: every retry is due and
	// sent once.
	ok.Store(true)
	clk.Set(t0.Add(10 * time.Minute))
	for _, id := range ids {
		f.waitState(t, id, store.DeliveryDelivered, 10*time.Second)
	}
	waitPasses(t, f.disp, 3)
	per := map[string]int{}
	for _, d := range rc.deliveries() {
		per[d.ID]++
	}
	for _, id := range ids {
		if per[id] != 2 {
			t.Fatalf("%s: %d requests, want 2", id, per[id])
		}
		if dl := attempts(id); dl.Attempts != 2 || !dl.DeliveredAt.Equal(t0.Add(10*time.Minute)) {
			t.Fatalf("%s: %+v", id, dl)
		}
	}
}

// TestRemovedProfileBacklogDoesNotHoldOthers: 3,000 events of a profile no
// longer in the config are moved back a page at a time, and a healthy
// endpoint's event is still delivered promptly meanwhile.
func TestRemovedProfileBacklogDoesNotHoldOthers(t *testing.T) {
	fast := newReceiver(t, nil)
	dir := t.TempDir()
	loadDue(t, dir, "gone", 3000, time.Now().UTC().Add(-time.Hour))
	db, err := store.OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db}
	f.disp = &Dispatcher{Store: db, Poll: 20 * ms, Endpoints: func(p string) (*Endpoint, Lookup) {
		if p == "gone" {
			return nil, Unknown
		}
		return endpoint(fast.srv.URL), Ready
	}}
	f.disp.Start()
	t.Cleanup(func() { f.disp.Stop(5 * time.Second); db.Close() })
	id := f.complete(t, "live")
	f.waitState(t, id, store.DeliveryDelivered, 3*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		due, err := db.DueEvents(context.Background(), time.Now(), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) == 0 {
			break // every event of the removed profile was moved back
		}
		if time.Now().After(deadline) {
			t.Fatalf("still due: %+v", due)
		}
		time.Sleep(20 * ms)
	}
	ev, _ := db.Event(context.Background(), "evt_gone-000000")
	if ev.Delivery.State != store.DeliveryPending || ev.Delivery.Attempts != 0 || !ev.Delivery.NextAttemptAt.After(time.Now()) {
		t.Fatalf("removed profile's event: %+v", ev.Delivery)
	}
}
