package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// updateBatch checks UpdateBatch: each item ends as Update would have
// ended it (written with its event, or refused alone, writing nothing),
// a batch larger than one group is written whole, and a closed store
// fails every item.
func (s suite) updateBatch(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	for _, id := range []string{"a", "b", "c", "d"} {
		must(t, db.Create(ctx, pending(id, base)))
	}
	at := base.Add(time.Second)
	_, err := db.Update(ctx, "d", store.StatusPending, to(store.StatusCompleted, "e-d", at))
	must(t, err)
	boom := errors.New("boom")
	ups := []store.BatchUpdate{
		{ID: "a", From: store.StatusPending, T: to(store.StatusExpired, "e-a", at)},
		{ID: "nope", From: store.StatusPending, T: to(store.StatusExpired, "e-nope", at)},
		{ID: "c", From: store.StatusPending, T: func(in *store.Intent) (store.Event, error) {
			in.Status = store.StatusRejected
			return store.Event{}, boom
		}},
		{ID: "d", From: store.StatusPending, T: to(store.StatusExpired, "e-d2", at)},
		{ID: "b", From: store.StatusPending, T: to(store.StatusExpired, "e-b", at)},
		{ID: "a", From: store.StatusPending, T: to(store.StatusExpired, "e-a2", at)}, // a second time
	}
	must(t, db.UpdateBatch(ctx, ups))
	for i, want := range []error{nil, store.ErrNotFound, boom, store.ErrStateChanged, nil, store.ErrStateChanged} {
		u := ups[i]
		if want == nil {
			if u.Err != nil || u.Out == nil || u.Out.Status != store.StatusExpired || u.Out.EventID != "e-"+u.ID || !slices.Equal(u.Out.Events, []string{"e-" + u.ID}) {
				t.Errorf("item %d (%s): %+v, %v", i, u.ID, u.Out, u.Err)
			}
			continue
		}
		if !errors.Is(u.Err, want) || u.Out != nil {
			t.Errorf("item %d (%s): %+v, %v; want %v", i, u.ID, u.Out, u.Err, want)
		}
	}
	for id, want := range map[string]store.Status{"a": store.StatusExpired, "b": store.StatusExpired, "c": store.StatusPending, "d": store.StatusCompleted} {
		got, err := db.Get(ctx, id)
		must(t, err)
		if got.Status != want {
			t.Errorf("%s is %s, want %s", id, got.Status, want)
		}
	}
	for _, id := range []string{"a", "b"} {
		ev, err := db.Event(ctx, "e-"+id)
		must(t, err)
		if ev.Type != store.EventExpired || ev.Intent.ID != id || ev.Intent.Status != store.StatusExpired || ev.Delivery.State != store.DeliveryPending {
			t.Errorf("event of %s: %+v", id, ev)
		}
	}
	evs, err := db.Events(ctx, "", "", 100)
	must(t, err)
	var got []string
	for _, ev := range evs {
		got = append(got, ev.ID)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"e-a", "e-b", "e-d"}) {
		t.Errorf("events %v, want e-a, e-b, e-d only", got)
	}
	// The expired ones left the expiry index; c is still in it.
	page, _, err := db.List(ctx, store.ByExpiry, base.Add(time.Hour), nil, 100)
	must(t, err)
	if !slices.Equal(ids(page), []string{"c"}) {
		t.Errorf("expiry index %v, want [c]", ids(page))
	}

	// More items than one group holds: all written.
	var many []store.BatchUpdate
	for i := range 300 {
		id := fmt.Sprintf("m%03d", i)
		must(t, db.Create(ctx, pending(id, base)))
		many = append(many, store.BatchUpdate{ID: id, From: store.StatusPending, T: to(store.StatusExpired, "e-"+id, at)})
	}
	must(t, db.UpdateBatch(ctx, many))
	for _, u := range many {
		if u.Err != nil || u.Out == nil {
			t.Fatalf("%s: %v", u.ID, u.Err)
		}
	}
	if evs, err := db.Events(ctx, "", "", 1000); err != nil || len(evs) != 303 {
		t.Errorf("%d events, %v; want 303", len(evs), err)
	}

	must(t, db.Close())
	closed := []store.BatchUpdate{{ID: "c", From: store.StatusPending, T: to(store.StatusExpired, "e-c", at)}}
	if err := db.UpdateBatch(ctx, closed); !errors.Is(err, store.ErrClosed) || !errors.Is(closed[0].Err, store.ErrClosed) {
		t.Errorf("UpdateBatch after Close: %v, item %v; want ErrClosed", err, closed[0].Err)
	}
}

// listBeforeEpoch: an index listed up to a time before 1970 (a retention
// longer than the clock's years) has nothing due, not everything.
func (s suite) listBeforeEpoch(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	must(t, db.Create(ctx, pending("a", base)))
	_, err := db.Update(ctx, "a", store.StatusPending, to(store.StatusExpired, "e-a", base))
	must(t, err)
	_, err = db.Annotate(ctx, "a", store.StatusExpired, func(x *store.Intent) { x.Settled = true })
	must(t, err)
	if page, _, err := db.List(ctx, store.ByFinished, base.Add(time.Hour), nil, 10); err != nil || len(page) != 1 {
		t.Fatalf("finished index up to later: %v, %v", ids(page), err)
	}
	for _, at := range []time.Time{time.Unix(0, 0).Add(-time.Hour), base.Add(-time.Duration(1 << 62))} {
		if page, _, err := db.List(ctx, store.ByFinished, at, nil, 10); err != nil || len(page) != 0 {
			t.Errorf("finished index up to %v: %v, %v; want none", at, ids(page), err)
		}
	}
}
