package webhook

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// TestBusyEndpointBacklogFewPasses: a pass claims ahead of the endpoint's
// free slots (queueDepth rounds) and each answer starts the next queued
// event, so 200 events to an endpoint with 4 slots take far fewer looks
// at the due index than the 50 a pass per round of slots would need.
func TestBusyEndpointBacklogFewPasses(t *testing.T) {
	rc := newReceiver(t, nil)
	dir := t.TempDir()
	const n = 200
	loadDue(t, dir, "p", n, time.Now().Add(-time.Minute))
	db, err := store.OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cs := &countingStore{Store: db}
	d := &Dispatcher{Store: cs, Poll: time.Hour, MaxInFlight: 8, PerEndpoint: 4,
		Endpoints: func(string) (*Endpoint, Lookup) { return endpoint(rc.srv.URL), Ready }}
	d.Start()
	defer d.Stop(5 * time.Second)
	deadline := time.Now().Add(time.Minute)
	for {
		pending, _, err := db.OutboxStats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events still pending", pending, n)
		}
		time.Sleep(5 * ms)
	}
	if got := len(rc.deliveries()); got != n {
		t.Fatalf("%d requests for %d events", got, n)
	}
	if c := cs.claims.Load(); c >= n/4 {
		t.Fatalf("%d looks at the due index for %d events through 4 slots: not claiming ahead", c, n)
	}
}

// TestStopReleasesClaimsOfQueuedEvents: events a pass claimed and queued
// behind a hanging endpoint's only slot are not started by Stop, and
// their claims are given up with the cancelled attempt's, so another
// instance claims all of them at once rather than after the lease.
func TestStopReleasesClaimsOfQueuedEvents(t *testing.T) {
	started := make(chan struct{}, 8)
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	dir := t.TempDir()
	loadDue(t, dir, "p", 5, time.Now().Add(-time.Minute))
	db, err := store.OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := &Dispatcher{Store: db, Owner: "stopping", Lease: time.Hour, PerEndpoint: 1, Poll: time.Hour,
		Endpoints: func(string) (*Endpoint, Lookup) { return endpoint(rc.srv.URL), Ready }}
	d.Start()
	<-started
	if due, err := db.ClaimDue(context.Background(), "other", time.Now(), time.Minute, 10); err != nil || len(due) != 0 {
		t.Fatalf("claimed %v while one attempt is in flight and four are queued: %v", due, err)
	}
	d.Stop(50 * ms)
	due, err := db.ClaimDue(context.Background(), "other", time.Now(), time.Minute, 10)
	if err != nil || len(due) != 5 {
		t.Fatalf("after Stop, another owner claims %v (%v); want all 5 at once", due, err)
	}
	if len(started) != 0 {
		t.Fatalf("%d queued attempts started during Stop", len(started))
	}
}

// TestAttemptCutAtClaimCutoff: an attempt whose claim's cutoff comes
// before the endpoint's timeout ends at the cutoff, and its failure is
// recorded (while the claim still holds).
func TestAttemptCutAtClaimCutoff(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	ep := endpoint(rc.srv.URL, 0, time.Hour)
	ep.Timeout = 10 * time.Second
	f := newFixture(t, nil, func(d *Dispatcher) {
		d.Endpoints = func(string) (*Endpoint, Lookup) { return nil, NoConfig } // the loop leaves events alone
	})
	id := f.complete(t, "p")
	ev, err := f.db.Event(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	f.disp.mu.Lock()
	f.disp.take(id, ep.URL)
	f.disp.mu.Unlock()
	start := time.Now()
	f.disp.attempt(ev, ep, start.Add(200*ms))
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("attempt took %v: not cut at the claim's cutoff (200ms), the endpoint's timeout is 10s", took)
	}
	got, err := f.db.Event(context.Background(), id)
	if err != nil || got.Delivery.Attempts != 1 || got.Delivery.State != store.DeliveryPending || got.Delivery.LastError == "" {
		t.Fatalf("recorded %+v (%v), want one failed attempt to retry", got.Delivery, err)
	}
}
