package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func openTest(t *testing.T, dir string) *Badger {
	t.Helper()
	db, err := OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func pending(id string, exp time.Time) *Intent {
	return &Intent{ID: id, Profile: "p", Bucket: "b", Key: "k/" + id, ContentType: "image/png",
		MaxSize: 10, Status: StatusPending, CreatedAt: exp.Add(-time.Minute), ExpiresAt: exp}
}

func complete(evID string) Transition {
	return func(in *Intent) (Event, error) {
		in.Status = StatusCompleted
		in.ETag = "etag"
		return Event{ID: evID, Type: EventCompleted}, nil
	}
}

func TestCreateGetSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	ctx := context.Background()
	in := pending("a1", time.Unix(1000, 0).UTC())
	in.Metadata = []byte(`{"album":"x"}`)
	if err := db.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := db.Create(ctx, in); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	if _, err := db.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir)
	defer db.Close()
	got, err := db.Get(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Key != "k/a1" || got.Status != StatusPending || string(got.Metadata) != `{"album":"x"}` || !got.ExpiresAt.Equal(in.ExpiresAt) {
		t.Fatalf("after reopen got %+v", got)
	}
}

func TestUpdateWritesEventWithTransition(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	ctx := context.Background()
	exp := time.Unix(5000, 0)
	db.Create(ctx, pending("a", exp))

	out, err := db.Update(ctx, "a", StatusPending, complete("e1"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != StatusCompleted {
		t.Fatalf("status %s", out.Status)
	}
	evs, _ := db.Events(ctx, "", "", 10)
	if len(evs) != 1 || evs[0].ID != "e1" || evs[0].Type != EventCompleted || evs[0].Intent.Status != StatusCompleted || evs[0].Intent.ETag != "etag" {
		t.Fatalf("events = %+v", evs)
	}
	// Already completed: a second transition from pending writes nothing.
	if _, err := db.Update(ctx, "a", StatusPending, complete("e2")); !errors.Is(err, ErrStateChanged) {
		t.Fatalf("second update: %v", err)
	}
	if evs, _ := db.Events(ctx, "", "", 10); len(evs) != 1 {
		t.Fatalf("a refused transition wrote an event: %d events", len(evs))
	}
	// The expiry index no longer lists the finished intent.
	if l, _, _ := db.List(ctx, ByExpiry, exp.Add(time.Hour), nil, 10); len(l) != 0 {
		t.Fatalf("finished intent still in expiry index: %v", l)
	}
}

func TestUpdateErrorChangesNothing(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	ctx := context.Background()
	db.Create(ctx, pending("a", time.Unix(5000, 0)))
	boom := errors.New("boom")
	_, err := db.Update(ctx, "a", StatusPending, func(in *Intent) (Event, error) {
		in.Status = StatusRejected
		return Event{}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	// A transition without an event is refused too.
	_, err = db.Update(ctx, "a", StatusPending, func(in *Intent) (Event, error) {
		in.Status = StatusRejected
		return Event{}, nil
	})
	if err == nil {
		t.Fatal("transition without event accepted")
	}
	got, _ := db.Get(ctx, "a")
	evs, _ := db.Events(ctx, "", "", 10)
	if got.Status != StatusPending || len(evs) != 0 {
		t.Fatalf("status %s, %d events after failed transitions", got.Status, len(evs))
	}
}

// TestConcurrentTransitionsOneWinner races many transitions of one intent:
// exactly one is written, with exactly one event.
func TestConcurrentTransitionsOneWinner(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	ctx := context.Background()
	for round := 0; round < 20; round++ {
		id := fmt.Sprintf("r%02d", round)
		db.Create(ctx, pending(id, time.Unix(5000, 0)))
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := db.Update(ctx, id, StatusPending, complete(fmt.Sprintf("%s-e%d", id, i)))
				switch {
				case err == nil:
					mu.Lock()
					wins++
					mu.Unlock()
				case errors.Is(err, ErrStateChanged), errors.Is(err, ErrConflict):
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("round %d: %d winners", round, wins)
		}
	}
	evs, _ := db.Events(ctx, "", "", 1000)
	if len(evs) != 20 {
		t.Fatalf("%d events for 20 intents", len(evs))
	}
}

func TestPendingExpiringBeforeOrdersByExpiry(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	ctx := context.Background()
	base := time.Unix(10000, 0)
	for i, off := range []int{30, 10, 20, 40} {
		db.Create(ctx, pending(fmt.Sprintf("i%d", i), base.Add(time.Duration(off)*time.Second)))
	}
	got, _, err := db.List(ctx, ByExpiry, base.Add(35*time.Second), nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range got {
		ids = append(ids, in.ID)
	}
	if fmt.Sprint(ids) != "[i1 i2 i0]" {
		t.Fatalf("got %v, want [i1 i2 i0]", ids)
	}
	if got, _, _ := db.List(ctx, ByExpiry, base.Add(35*time.Second), nil, 2); len(got) != 2 {
		t.Fatalf("limit ignored: %d", len(got))
	}
}

// TestDueIndexKeepsProfileAcrossRetries: a rescheduled event still names
// its profile in full (long names included), and the outbox age is right.
func TestDueIndexKeepsProfileAcrossRetries(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	ctx := context.Background()
	created := time.Now().UTC().Add(-time.Minute)
	in := pending("a", time.Unix(5000, 0))
	in.Profile = "documents-and-more"
	db.Create(ctx, in)
	if _, err := db.Update(ctx, "a", StatusPending, func(x *Intent) (Event, error) {
		x.Status = StatusCompleted
		return Event{ID: "e1", Type: EventCompleted, CreatedAt: created}, nil
	}); err != nil {
		t.Fatal(err)
	}
	next := time.Now().UTC().Add(time.Second)
	if _, err := db.SetDelivery(ctx, "e1", Delivery{State: DeliveryPending, Attempts: 1, NextAttemptAt: next}); err != nil {
		t.Fatal(err)
	}
	due, err := db.DueEvents(ctx, next, 10)
	if err != nil || len(due) != 1 || due[0].Profile != "documents-and-more" {
		t.Fatalf("due = %+v, %v", due, err)
	}
	n, oldest, err := db.OutboxStats(ctx)
	if err != nil || n != 1 || !oldest.Equal(created) {
		t.Fatalf("stats: %d %v %v (want %v)", n, oldest, err, created)
	}
}
