package webhook

import (
	"context"
	"net/http"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

const ms = time.Millisecond

func TestDeliversSignedPayload(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok": true, "message": "stored"}`))
	})
	f := newFixture(t, map[string]*Endpoint{"p": endpoint(rc.srv.URL)}, nil)
	id := f.complete(t, "p")
	ev := f.waitState(t, id, store.DeliveryDelivered, 5*time.Second)
	if string(ev.Delivery.Response) != `{"ok":true,"message":"stored"}` || ev.Delivery.Attempts != 1 || ev.Delivery.LastStatus != 200 {
		t.Fatalf("delivery = %+v", ev.Delivery)
	}
	got := rc.deliveries()
	if len(got) != 1 || got[0].ID != id {
		t.Fatalf("received %+v", got)
	}
	p := got[0].Body
	if p.Type != "upload.completed" || p.Data.ID != ev.Intent.ID || p.Data.Status != "completed" || p.Data.Size != 7 ||
		p.Data.ETag != "etag" || p.Data.Key != ev.Intent.Key || string(p.Data.Metadata) != `{"a":1}` || p.Timestamp.IsZero() {
		t.Fatalf("payload = %+v", p)
	}
}

// TestReceiverDownThenUp: every attempt carries the same id and body, a
// fresh timestamp, and the event arrives once the receiver is back.
func TestReceiverDownThenUp(t *testing.T) {
	var up atomic.Bool
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	f := newFixture(t, map[string]*Endpoint{"p": endpoint(rc.srv.URL, 0, 1100*ms, 1100*ms, 1100*ms, time.Hour)}, nil)
	ids := []string{f.complete(t, "p"), f.complete(t, "p")}
	deadline := time.Now().Add(5 * time.Second)
	for len(rc.deliveries()) < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * ms)
	}
	up.Store(true)
	for _, id := range ids {
		ev := f.waitState(t, id, store.DeliveryDelivered, 10*time.Second)
		if ev.Delivery.Attempts < 2 {
			t.Fatalf("%s delivered in %d attempts", id, ev.Delivery.Attempts)
		}
	}
	byID := map[string][]delivery{}
	for _, d := range rc.deliveries() {
		byID[d.ID] = append(byID[d.ID], d)
	}
	for _, id := range ids {
		ds := byID[id]
		if len(ds) < 2 {
			t.Fatalf("%s: %d attempts seen", id, len(ds))
		}
		if ds[0].Timestamp == ds[len(ds)-1].Timestamp {
			t.Errorf("%s: timestamp not refreshed across retries", id)
		}
		if !reflect.DeepEqual(ds[0].Body, ds[len(ds)-1].Body) {
			t.Errorf("%s: body changed across retries", id)
		}
	}
}

func TestGoneIsDeadThenReplayed(t *testing.T) {
	var fixed atomic.Bool
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if !fixed.Load() {
			w.WriteHeader(http.StatusGone)
		}
	})
	f := newFixture(t, map[string]*Endpoint{"p": endpoint(rc.srv.URL)}, nil)
	id := f.complete(t, "p")
	ev := f.waitState(t, id, store.DeliveryDead, 5*time.Second)
	if ev.Delivery.Attempts != 1 || ev.Delivery.LastStatus != 410 {
		t.Fatalf("410 was retried: %+v", ev.Delivery)
	}
	dead, _ := f.db.Events(context.Background(), store.DeliveryDead, "", 10)
	if len(dead) != 1 || dead[0].ID != id {
		t.Fatalf("dead letters = %v", dead)
	}
	fixed.Store(true)
	if _, err := f.disp.Redeliver(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	f.waitState(t, id, store.DeliveryDelivered, 5*time.Second)
	if n := len(rc.deliveries()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestRetriesExhaustedIsDead(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	f := newFixture(t, map[string]*Endpoint{"p": endpoint(rc.srv.URL, 0, 20*ms, 20*ms)}, nil)
	id := f.complete(t, "p")
	ev := f.waitState(t, id, store.DeliveryDead, 5*time.Second)
	if ev.Delivery.Attempts != 3 || len(rc.deliveries()) != 3 {
		t.Fatalf("attempts %d, requests %d, want 3", ev.Delivery.Attempts, len(rc.deliveries()))
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 0 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	f := newFixture(t, map[string]*Endpoint{"p": endpoint(rc.srv.URL, 0, 10*ms, 10*ms)}, nil)
	id := f.complete(t, "p")
	f.waitState(t, id, store.DeliveryDelivered, 10*time.Second)
	got := rc.deliveries()
	if len(got) != 2 {
		t.Fatalf("%d requests", len(got))
	}
	if gap := got[1].At.Sub(got[0].At); gap < 1900*ms {
		t.Fatalf("retried %v after a 429 with Retry-After: 2", gap)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	other := newReceiver(t, nil)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.srv.URL, http.StatusTemporaryRedirect)
	})
	f := newFixture(t, map[string]*Endpoint{"p": endpoint(rc.srv.URL, 0, time.Hour)}, nil)
	id := f.complete(t, "p")
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev, _ := f.db.Event(context.Background(), id)
		if ev.Delivery.Attempts == 1 {
			if ev.Delivery.State != store.DeliveryPending || ev.Delivery.LastStatus != 307 {
				t.Fatalf("after a redirect: %+v", ev.Delivery)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no attempt")
		}
		time.Sleep(10 * ms)
	}
	if n := len(other.deliveries()); n != 0 {
		t.Fatalf("redirect followed: %d requests to its target", n)
	}
}

// TestHangingEndpointDoesNotStarveOthers: an endpoint that never answers
// holds only its own share of workers; another endpoint's events all get
// through while it hangs, and its own attempts time out.
func TestHangingEndpointDoesNotStarveOthers(t *testing.T) {
	release := make(chan struct{})
	hang := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	fast := newReceiver(t, nil)
	slowEP := endpoint(hang.srv.URL, 0, time.Hour)
	slowEP.Timeout = 1500 * ms
	f := newFixture(t, map[string]*Endpoint{"slow": slowEP, "fast": endpoint(fast.srv.URL)}, func(d *Dispatcher) {
		d.MaxInFlight, d.PerEndpoint = 8, 4
	})
	var slowIDs, fastIDs []string
	for i := 0; i < 12; i++ {
		slowIDs = append(slowIDs, f.complete(t, "slow"))
	}
	for i := 0; i < 20; i++ {
		fastIDs = append(fastIDs, f.complete(t, "fast"))
	}
	for _, id := range fastIDs {
		f.waitState(t, id, store.DeliveryDelivered, 1200*ms)
	}
	// Only the slow endpoint's share was ever in flight.
	ev, _ := f.db.Event(context.Background(), slowIDs[0])
	if ev.Delivery.State != store.DeliveryPending {
		t.Fatalf("slow event: %+v", ev.Delivery)
	}
	close(release)
	// Timed-out attempts are recorded as failures, to retry later.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev, _ = f.db.Event(context.Background(), slowIDs[0])
		if ev.Delivery.Attempts >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hanging attempt never ended")
		}
		time.Sleep(10 * ms)
	}
}

func TestAwaitReturnsBackendAnswer(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write([]byte(`{"thumbnail":"/t/1.png"}`))
	})
	f := newFixture(t, map[string]*Endpoint{"p": endpoint(rc.srv.URL)}, func(d *Dispatcher) { d.Poll = time.Hour })
	id := f.complete(t, "p")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	got, ok := f.disp.Await(ctx, id)
	if !ok || string(got) != `{"thumbnail":"/t/1.png"}` {
		t.Fatalf("Await = %s, %v", got, ok)
	}
	// Later calls get the recorded answer.
	if got, ok := f.disp.Await(ctx, id); !ok || string(got) != `{"thumbnail":"/t/1.png"}` {
		t.Fatalf("second Await = %s, %v", got, ok)
	}
}

func TestAwaitGivesUpWhenBackendSlow(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) { <-release })
	defer close(release)
	f := newFixture(t, map[string]*Endpoint{"p": endpoint(rc.srv.URL)}, nil)
	id := f.complete(t, "p")
	ctx, cancel := context.WithTimeout(context.Background(), 200*ms)
	defer cancel()
	start := time.Now()
	if _, ok := f.disp.Await(ctx, id); ok || time.Since(start) > time.Second {
		t.Fatalf("Await: ok=%v after %v", ok, time.Since(start))
	}
}

func TestProfileWithoutWebhookIsSkipped(t *testing.T) {
	f := newFixture(t, map[string]*Endpoint{}, nil)
	id := f.complete(t, "nowebhook")
	f.waitState(t, id, store.DeliverySkipped, 5*time.Second)
}

// TestNoConfigLeavesEventsPending: while no config is loaded (a process
// starting or stopping) or the profile is not in it, nothing is skipped.
func TestNoConfigLeavesEventsPending(t *testing.T) {
	rc := newReceiver(t, nil)
	var loaded atomic.Bool
	f := newFixture(t, nil, func(d *Dispatcher) {
		d.Endpoints = func(p string) (*Endpoint, Lookup) {
			if !loaded.Load() {
				return nil, NoConfig
			}
			return endpoint(rc.srv.URL), Ready
		}
	})
	id := f.complete(t, "p")
	// Three looks at the due index with the event due: none may decide.
	waitQuiet(t, f.disp, 3)
	if ev, _ := f.db.Event(context.Background(), id); ev.Delivery.State != store.DeliveryPending || ev.Delivery.Attempts != 0 {
		t.Fatalf("decided without a config: %+v", ev.Delivery)
	}
	if n := len(rc.deliveries()); n != 0 {
		t.Fatalf("%d requests sent without a config", n)
	}
	loaded.Store(true)
	f.disp.Kick()
	f.waitState(t, id, store.DeliveryDelivered, 5*time.Second)
}

// TestStopDrainsInFlight: an attempt in flight at Stop finishes and is
// recorded when it ends within the grace period.
func TestStopDrainsInFlight(t *testing.T) {
	started := make(chan struct{}, 1)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		time.Sleep(300 * ms)
	})
	db, err := store.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f := &fixture{db: db, eps: map[string]*Endpoint{"p": endpoint(rc.srv.URL)}}
	f.disp = &Dispatcher{Store: db, Endpoints: func(p string) (*Endpoint, Lookup) { return f.eps[p], Ready }}
	f.disp.Start()
	id := f.complete(t, "p")
	<-started
	f.disp.Stop(5 * time.Second)
	ev, _ := db.Event(context.Background(), id)
	if ev.Delivery.State != store.DeliveryDelivered {
		t.Fatalf("in-flight attempt not drained: %+v", ev.Delivery)
	}
}

// TestRetryScheduleKeptUnderLoad: an attempt that fails while a scan is
// under way is not sent again by that scan: each event gets one attempt
// when the next is a minute away.
func TestRetryScheduleKeptUnderLoad(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	f := newFixture(t, map[string]*Endpoint{"p": endpoint(rc.srv.URL, 0, time.Minute)}, nil)
	var ids []string
	for i := 0; i < 150; i++ {
		ids = append(ids, f.complete(t, "p"))
	}
	for _, id := range ids {
		deadline := time.Now().Add(10 * time.Second)
		for {
			ev, _ := f.db.Event(context.Background(), id)
			if ev.Delivery.Attempts >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never attempted", id)
			}
			time.Sleep(10 * ms)
		}
	}
	// Three more looks at the due index, and every attempt they started
	// has ended: nothing may have been sent again.
	waitQuiet(t, f.disp, 3)
	if n := len(rc.deliveries()); n != len(ids) {
		t.Fatalf("%d requests for %d events whose retry is a minute away", n, len(ids))
	}
}

// waitQuiet waits until the dispatcher has looked at the due index n more
// times (see waitPasses) and no attempt is in flight: whatever those looks
// were going to send has been sent, answered and recorded. It stands in
// for "wait a while and check that nothing happened".
func waitQuiet(t *testing.T, d *Dispatcher, n int64) {
	t.Helper()
	waitPasses(t, d, n)
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		busy := len(d.inflight)
		d.mu.Unlock()
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d attempts still in flight", busy)
		}
		time.Sleep(2 * ms)
	}
}

// TestUnknownProfileDoesNotClogQueue: events of a profile gone from the
// config are moved back, so others behind them are still delivered.
func TestUnknownProfileDoesNotClogQueue(t *testing.T) {
	rc := newReceiver(t, nil)
	f := newFixture(t, nil, func(d *Dispatcher) {
		d.Endpoints = func(p string) (*Endpoint, Lookup) {
			if p == "gone" {
				return nil, Unknown
			}
			return endpoint(rc.srv.URL), Ready
		}
	})
	var gone []string
	for i := 0; i < 30; i++ {
		gone = append(gone, f.complete(t, "gone"))
	}
	id := f.complete(t, "live")
	f.waitState(t, id, store.DeliveryDelivered, 5*time.Second)
	ev, _ := f.db.Event(context.Background(), gone[0])
	if ev.Delivery.State != store.DeliveryPending || ev.Delivery.Attempts != 0 || !ev.Delivery.NextAttemptAt.After(time.Now()) {
		t.Fatalf("unknown profile's event: %+v", ev.Delivery)
	}
}
