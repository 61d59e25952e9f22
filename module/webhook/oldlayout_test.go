package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// TestOldLayoutStoreDelivered: a store whose delivery records were written
// by an earlier version (inside the event, no record apart: written here
// with store.WriteRawEvent) is opened by the dispatcher, which delivers
// its pending events from their old records (the attempt counted on from
// the old one) and lists them delivered, and leaves settled ones alone.
func TestOldLayoutStoreDelivered(t *testing.T) {
	dir := t.TempDir()
	db, err := store.OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UTC()
	for _, id := range []string{"a", "b", "c"} {
		in := &store.Intent{ID: id, Profile: "p", Bucket: "b", Key: "k/" + id, ContentType: "image/png", MaxSize: 10,
			Status: store.StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
		if err := db.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Update(ctx, id, store.StatusPending, func(x *store.Intent) (store.Event, error) {
			x.Status = store.StatusCompleted
			return store.Event{ID: "evt_" + id, Type: store.EventCompleted, CreatedAt: now}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// evt_a: one failed attempt recorded the old way, due now (its due
	// entry unchanged); evt_c: dead, recorded the old way, out of the
	// due index as the old version left it.
	old := func(id string, d store.Delivery) {
		ev, err := db.Event(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		ev.Delivery = d
		val, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.WriteRawEvent(db, id, val); err != nil {
			t.Fatal(err)
		}
	}
	old("evt_a", store.Delivery{State: store.DeliveryPending, Attempts: 1, NextAttemptAt: now, LastAttemptAt: now,
		LastStatus: 500, LastError: "endpoint answered 500", Version: 2})
	if _, err := db.SetDelivery(ctx, "evt_c", store.Delivery{State: store.DeliveryDead}); err != nil {
		t.Fatal(err)
	}
	old("evt_c", store.Delivery{State: store.DeliveryDead, Attempts: 10, LastStatus: 500, Version: 5})
	db.Close()

	db, err = store.OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		got[r.Header.Get("webhook-id")]++
		mu.Unlock()
	}))
	defer srv.Close()
	eps := map[string]*Endpoint{"p": endpoint(srv.URL)}
	d := &Dispatcher{Store: db, Poll: 20 * time.Millisecond, Endpoints: func(p string) (*Endpoint, Lookup) { return eps[p], Ready }}
	d.Start()
	defer d.Stop(2 * time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, err := db.Events(ctx, store.DeliveryDelivered, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 2 {
			for _, ev := range evs {
				want := store.Delivery{Attempts: 1, Version: 2}
				if ev.ID == "evt_a" {
					want = store.Delivery{Attempts: 2, Version: 3}
				}
				if ev.Delivery.Attempts != want.Attempts || ev.Delivery.Version != want.Version || ev.Delivery.LastStatus != 200 {
					t.Fatalf("%s delivered with %+v, want %d attempts, version %d", ev.ID, ev.Delivery, want.Attempts, want.Version)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered: %d of 2", len(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, _, err := db.OutboxStats(ctx); err != nil || n != 0 {
		t.Fatalf("pending %d %v, want 0", n, err)
	}
	ev, err := db.Event(ctx, "evt_c")
	if err != nil || ev.Delivery.State != store.DeliveryDead || ev.Delivery.Attempts != 10 {
		t.Fatalf("evt_c = %+v %v, want dead as recorded", ev, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got["evt_a"] != 1 || got["evt_b"] != 1 || got["evt_c"] != 0 {
		t.Fatalf("received %v", got)
	}
}
