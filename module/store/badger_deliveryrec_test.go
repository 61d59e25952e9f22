package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// writeOldDelivery stores event id's delivery record d as versions before
// the "v/" layout did: the whole event rewritten with d inside, no record
// apart, and the due index entries moved as setDelivery moved them.
func writeOldDelivery(t *testing.T, db *Badger, id string, d Delivery) {
	t.Helper()
	if err := db.update(func(txn *badger.Txn) error {
		ev, err := getJSON[Event](txn, outboxKey(id), "event", id)
		if err != nil {
			return err
		}
		if ev.Delivery.State == DeliveryPending {
			if err := txn.Delete(dueKey(ev.Intent.Profile, ev.Delivery.NextAttemptAt, id)); err != nil {
				return err
			}
			if err := txn.Delete(createdKey(ev.CreatedAt, id)); err != nil {
				return err
			}
		}
		ev.Delivery = d
		val, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if err := txn.Delete(deliveryKey(id)); err != nil {
			return err
		}
		if err := txn.Set(outboxKey(id), val); err != nil {
			return err
		}
		if d.State == DeliveryPending {
			if err := txn.Set(dueKey(ev.Intent.Profile, d.NextAttemptAt, id), nil); err != nil {
				return err
			}
			return txn.Set(createdKey(ev.CreatedAt, id), nil)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestOldLayoutDeliveryRecordsRead: a store whose delivery records were
// written by an earlier version, inside their events, opens with its
// pending events listed, claimed and delivered, its settled ones listed
// as they were; the records written since are read over the old ones,
// across a reopen, and a record built from an old read is refused.
func TestOldLayoutDeliveryRecordsRead(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	ctx := context.Background()
	created := time.Unix(5000, 0).UTC()
	retryAt := created.Add(time.Minute)
	finish(t, db, "a", "p", "e1", created)
	finish(t, db, "b", "p", "e2", created)
	finish(t, db, "c", "p", "e3", created)
	writeOldDelivery(t, db, "e1", Delivery{State: DeliveryPending, Attempts: 2, LastStatus: 500, LastError: "endpoint answered 500",
		NextAttemptAt: retryAt, LastAttemptAt: created, Version: 3})
	writeOldDelivery(t, db, "e2", Delivery{State: DeliveryDelivered, Attempts: 1, LastStatus: 200, DeliveredAt: created,
		Response: json.RawMessage(`{"ok":true}`), Version: 2})
	db.Close()

	db = openTest(t, dir)
	listed := func(state DeliveryState) map[string]Delivery {
		t.Helper()
		evs, err := db.Events(ctx, state, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]Delivery{}
		for _, ev := range evs {
			out[ev.ID] = ev.Delivery
		}
		return out
	}
	if p := listed(DeliveryPending); len(p) != 2 || p["e1"].Attempts != 2 || p["e1"].Version != 3 || p["e3"].Version != 1 {
		t.Fatalf("pending after reopen = %+v, want e1 (2 attempts, version 3) and e3", p)
	}
	if d := listed(DeliveryDelivered); len(d) != 1 || string(d["e2"].Response) != `{"ok":true}` {
		t.Fatalf("delivered after reopen = %+v, want e2 with its answer", d)
	}
	if n, _, err := db.OutboxStats(ctx); err != nil || n != 2 {
		t.Fatalf("pending count %d %v, want 2", n, err)
	}
	due, err := db.ClaimDue(ctx, "A", retryAt, time.Minute, 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("claimed %+v %v, want e1 and e3", due, err)
	}
	updates := map[string]Delivery{}
	for _, du := range due {
		if du.Event == nil || du.Event.Intent.ID == "" {
			t.Fatalf("claimed %s without its event", du.EventID)
		}
		dl := du.Event.Delivery
		dl.Attempts++
		dl.State, dl.NextAttemptAt, dl.DeliveredAt, dl.LastStatus, dl.LastError = DeliveryDelivered, time.Time{}, retryAt, 200, ""
		updates[du.EventID] = dl
	}
	if updates["e1"].Attempts != 3 || updates["e1"].Version != 3 {
		t.Fatalf("e1 claimed with %+v, want its old-layout record (2 attempts, version 3)", updates["e1"])
	}
	if err := db.SetDeliveries(ctx, updates); err != nil {
		t.Fatal(err)
	}
	// The attempt that read version 3 before is refused now.
	stale := updates["e1"]
	stale.State = DeliveryDead
	if _, err := db.SetDelivery(ctx, "e1", stale); !errors.Is(err, ErrStateChanged) {
		t.Fatalf("record from an old read: %v, want ErrStateChanged", err)
	}
	db.Close()

	db = openTest(t, dir)
	defer db.Close()
	if p := listed(DeliveryPending); len(p) != 0 {
		t.Fatalf("pending after delivery = %+v", p)
	}
	d := listed(DeliveryDelivered)
	if len(d) != 3 || d["e1"].Attempts != 3 || d["e1"].Version != 4 || d["e3"].Version != 2 || d["e2"].Version != 2 {
		t.Fatalf("delivered after reopen = %+v, want e1 (3 attempts, version 4), e2 and e3", d)
	}
	if due, err := db.DueEvents(ctx, retryAt.Add(time.Hour), 10); err != nil || len(due) != 0 {
		t.Fatalf("due after delivery = %+v %v", due, err)
	}
	if n, _, err := db.OutboxStats(ctx); err != nil || n != 0 {
		t.Fatalf("pending count %d %v, want 0", n, err)
	}
	ev, err := db.Event(ctx, "e1")
	if err != nil || ev.Delivery.State != DeliveryDelivered || ev.Intent.ID != "a" || ev.Delivery.LastError != "" {
		t.Fatalf("e1 = %+v %v", ev, err)
	}
	// Pruning removes the record kept apart with its event.
	if _, err := db.Annotate(ctx, "a", StatusCompleted, func(x *Intent) { x.Settled = true }); err != nil {
		t.Fatal(err)
	}
	if err := db.Prune(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := db.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(deliveryKey("e1"))
		return err
	}); !errors.Is(err, badger.ErrKeyNotFound) {
		t.Fatalf("delivery record of a pruned event: %v, want gone", err)
	}
}

// TestDeliveryWriteLeavesEventBody: a delivery record is written apart
// from its event, whose stored body (and its intent snapshot) is not
// rewritten: the event's commit timestamp stays the one it was created
// at, and the record read back is the new one.
func TestDeliveryWriteLeavesEventBody(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	ctx := context.Background()
	created := time.Unix(5000, 0).UTC()
	finish(t, db, "a", "p", "e1", created)
	version := func() uint64 {
		var v uint64
		if err := db.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(outboxKey("e1"))
			if err == nil {
				v = item.Version()
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := version()
	due, err := db.ClaimDue(ctx, "A", created, time.Minute, 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("claimed %+v %v", due, err)
	}
	dl := due[0].Event.Delivery
	dl.Attempts, dl.State, dl.NextAttemptAt, dl.LastStatus = 1, DeliveryPending, created.Add(time.Second), 503
	if err := db.SetDeliveries(ctx, map[string]Delivery{"e1": dl}); err != nil {
		t.Fatal(err)
	}
	// Claimed again when due, with the record apart, not the one inside.
	due, err = db.ClaimDue(ctx, "A", created.Add(time.Second), time.Minute, 10)
	if err != nil || len(due) != 1 || due[0].Event == nil {
		t.Fatalf("claimed %+v %v", due, err)
	}
	if got := due[0].Event.Delivery; got.Attempts != 1 || got.Version != 2 || got.LastStatus != 503 {
		t.Fatalf("claimed with record %+v, want the retry's (1 attempt, version 2)", got)
	}
	if _, err := db.SetDelivery(ctx, "e1", Delivery{State: DeliveryDelivered, Attempts: 2, Version: 2}); err != nil {
		t.Fatal(err)
	}
	if after := version(); after != before {
		t.Fatalf("event body rewritten by a delivery record: commit %d, was %d", after, before)
	}
	ev, err := db.Event(ctx, "e1")
	if err != nil || ev.Delivery.State != DeliveryDelivered || ev.Delivery.Attempts != 2 || ev.Delivery.Version != 3 {
		t.Fatalf("e1 = %+v %v, want delivered, 2 attempts, version 3", ev.Delivery, err)
	}
}

// TestClaimReadsEventsWithGaps: ClaimDue hands over each claimed event,
// the right one, whether the claimed events are neighbours in key order
// or far apart (events between them claimed by another owner, delivered,
// or of another profile).
func TestClaimReadsEventsWithGaps(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	ctx := context.Background()
	created := time.Unix(5000, 0).UTC()
	var ids []string
	for i := 0; i < 40; i++ {
		id := string(rune('a'+i/26)) + string(rune('a'+i%26))
		profile := "p"
		if i%7 == 3 {
			profile = "other"
		}
		finish(t, db, "in"+id, profile, "e"+id, created.Add(time.Duration(i)*time.Millisecond))
		ids = append(ids, "e"+id)
	}
	// Another owner holds some, one is delivered: gaps of 1 to 10 keys.
	if _, err := db.ClaimDue(ctx, "B", created.Add(5*time.Millisecond), time.Hour, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetDelivery(ctx, ids[20], Delivery{State: DeliveryDelivered}); err != nil {
		t.Fatal(err)
	}
	due, err := db.ClaimDue(ctx, "A", created.Add(time.Second), time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) < 30 {
		t.Fatalf("claimed %d events", len(due))
	}
	for _, du := range due {
		if du.Event == nil || du.Event.ID != du.EventID || du.Event.Intent.Profile != du.Profile || du.Event.Intent.ID != "in"+du.EventID[1:] {
			t.Fatalf("claimed %s with event %+v", du.EventID, du.Event)
		}
		if du.EventID == ids[20] {
			t.Fatalf("delivered event %s claimed", du.EventID)
		}
	}
}
