package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
)

// finish creates intent id of profile and completes it, writing event evID
// created at created (pending delivery, due at created).
func finish(t testing.TB, db *Badger, id, profile, evID string, created time.Time) {
	t.Helper()
	ctx := context.Background()
	in := pending(id, created.Add(time.Hour))
	in.Profile = profile
	if err := db.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Update(ctx, id, StatusPending, func(x *Intent) (Event, error) {
		x.Status = StatusCompleted
		return Event{ID: evID, Type: EventCompleted, CreatedAt: created}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestDueEventsPerProfile: a profile with a long backlog due earlier does
// not hide another profile's due event; each profile is read up to the
// bound, earliest first, and nothing not yet due is listed.
func TestDueEventsPerProfile(t *testing.T) {
	db, err := OpenBadgerUnsynced(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	base := time.Unix(100000, 0).UTC()
	for i := 0; i < 300; i++ {
		finish(t, db, fmt.Sprintf("b%04d", i), "busy", fmt.Sprintf("eb%04d", i), base.Add(time.Duration(i)*time.Millisecond))
	}
	// "busy2" shares a prefix with "busy": the length prefix keeps them apart.
	finish(t, db, "c1", "busy2", "ec1", base.Add(time.Second))
	finish(t, db, "c2", "calm", "ec2", base.Add(2*time.Second))
	finish(t, db, "c3", "calm", "ec3", base.Add(time.Hour)) // not due yet

	due, err := db.DueEvents(ctx, base.Add(time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, d := range due {
		got[d.Profile] = append(got[d.Profile], d.EventID)
	}
	if len(got["busy"]) != 10 || got["busy"][0] != "eb0000" || got["busy"][9] != "eb0009" {
		t.Fatalf("busy: %v", got["busy"])
	}
	if fmt.Sprint(got["busy2"]) != "[ec1]" || fmt.Sprint(got["calm"]) != "[ec2]" || len(got) != 3 {
		t.Fatalf("due = %v", got)
	}
	// Due exactly at t counts.
	if due, _ := db.DueEvents(ctx, base.Add(2*time.Second), 1); len(due) != 3 {
		t.Fatalf("due at t: %+v", due)
	}
}

// TestOldDueIndexMigrated: a store written by a version with the due index
// by time only ("d/") is moved to the per-profile index when opened.
func TestOldDueIndexMigrated(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	created := time.Unix(5000, 0).UTC()
	finish(t, db, "a", "prof", "e1", created)
	// Rewrite the index as the old version kept it.
	if err := db.update(func(txn *badger.Txn) error {
		if err := txn.Delete(dueKey("prof", created, "e1")); err != nil {
			return err
		}
		if err := txn.Delete(createdKey(created, "e1")); err != nil {
			return err
		}
		v := binary.BigEndian.AppendUint64(nil, uint64(created.UnixNano()))
		return txn.Set(timeKey(oldDuePrefix, created, "e1"), append(v, "prof"...))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openTest(t, dir)
	defer db.Close()
	due, err := db.DueEvents(context.Background(), created, 10)
	if err != nil || len(due) != 1 || due[0].EventID != "e1" || due[0].Profile != "prof" {
		t.Fatalf("due after migration = %+v, %v", due, err)
	}
	n, oldest, err := db.OutboxStats(context.Background())
	if err != nil || n != 1 || !oldest.Equal(created) {
		t.Fatalf("stats after migration: %d %v %v", n, oldest, err)
	}
}

// TestDamagedIntentSkipped: an intent whose value does not decode is
// returned as a damaged stub by List and ListStatus, which go on with the
// others; it is logged and counted once however often it is read.
func TestDamagedIntentSkipped(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	core, logs := observer.New(zapcore.InfoLevel)
	db.SetLogger(zap.New(core))
	ctx := context.Background()
	exp := time.Unix(5000, 0)
	for _, id := range []string{"a", "b", "c"} {
		if err := db.Create(ctx, pending(id, exp)); err != nil {
			t.Fatal(err)
		}
	}
	before := damagedCount("intent")
	if err := WriteRawIntent(db, "b", []byte(`{"id":"b","status":`)); err != nil {
		t.Fatal(err)
	}
	check := func(ins []*Intent, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if len(ins) != 3 || ins[0].ID != "a" || ins[0].Damaged != "" || ins[2].ID != "c" || ins[2].Status != StatusPending {
			t.Fatalf("listing = %+v", ins)
		}
		if ins[1].ID != "b" || ins[1].Damaged == "" || ins[1].Status != "" {
			t.Fatalf("damaged stub = %+v", ins[1])
		}
	}
	for range 2 {
		ins, _, err := db.List(ctx, ByExpiry, exp.Add(time.Hour), nil, 10)
		check(ins, err)
		ins, _, err = db.ListStatus(ctx, StatusPending, "", nil, 10)
		check(ins, err)
	}
	// Paging across the damaged record works too.
	page, next, err := db.ListStatus(ctx, StatusPending, "p", nil, 2)
	if err != nil || len(page) != 2 || next == nil {
		t.Fatalf("page 1: %d %v %v", len(page), next, err)
	}
	if page, _, err = db.ListStatus(ctx, StatusPending, "p", next, 2); err != nil || len(page) != 1 || page[0].ID != "c" {
		t.Fatalf("page 2: %+v %v", page, err)
	}
	if _, err := db.Get(ctx, "b"); !errors.Is(err, ErrDamaged) {
		t.Fatalf("get damaged: %v", err)
	}
	if _, err := db.Update(ctx, "b", StatusPending, complete("eb")); !errors.Is(err, ErrDamaged) {
		t.Fatalf("update damaged: %v", err)
	}
	if n := logs.FilterField(zap.String("id", "b")).Len(); n != 1 {
		t.Fatalf("damaged intent logged %d times, want once", n)
	}
	if d := damagedCount("intent") - before; d != 1 {
		t.Fatalf("damaged intent counted %v times, want once", d)
	}
}

// TestDamagedEventListed: an event that does not decode is a stub in the
// outbox listing, which goes on.
func TestDamagedEventListed(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	created := time.Unix(5000, 0).UTC()
	finish(t, db, "a", "p", "e1", created)
	finish(t, db, "b", "p", "e2", created)
	finish(t, db, "c", "p", "e3", created)
	if err := WriteRawEvent(db, "e2", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	evs, err := db.Events(context.Background(), DeliveryPending, "", 10)
	if err != nil || len(evs) != 3 || evs[1].ID != "e2" || evs[1].Damaged == "" || evs[2].ID != "e3" || evs[2].Damaged != "" {
		t.Fatalf("events = %+v, %v", evs, err)
	}
	if _, err := db.Event(context.Background(), "e2"); !errors.Is(err, ErrDamaged) {
		t.Fatalf("event: %v", err)
	}
}

// TestCloseRacingCreate: Create called while Close runs either writes the
// intent durably or returns ErrClosed, and the race detector sees no race
// (run with -race, as make test does).
func TestCloseRacingCreate(t *testing.T) {
	for round := 0; round < 5; round++ {
		dir := t.TempDir()
		db, err := OpenBadgerUnsynced(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var ok []string
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; ; i++ {
					id := fmt.Sprintf("g%d-%d", g, i)
					err := db.Create(context.Background(), pending(id, time.Unix(5000, 0)))
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					ok = append(ok, id)
					mu.Unlock()
				}
			}()
		}
		close(start)
		for { // let some creates through first
			mu.Lock()
			n := len(ok)
			mu.Unlock()
			if n >= 20 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if err := db.Create(context.Background(), pending("late", time.Unix(5000, 0))); !errors.Is(err, ErrClosed) {
			t.Fatalf("create after close: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		db = openTest(t, dir)
		for _, id := range ok {
			if _, err := db.Get(context.Background(), id); err != nil {
				t.Fatalf("acknowledged create %s: %v", id, err)
			}
		}
		db.Close()
	}
}

// TestStaleDeliveryRecordRefused: a delivery record built from an old read
// (an attempt that began before an operator's redelivery) does not
// overwrite the newer record.
func TestStaleDeliveryRecordRefused(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	ctx := context.Background()
	finish(t, db, "a", "p", "e1", time.Now().UTC())
	atStart, _ := db.Event(ctx, "e1") // the attempt reads the event

	redeliver := atStart.Delivery
	redeliver.NextAttemptAt, redeliver.Attempts = time.Now().UTC(), 0
	if _, err := db.SetDelivery(ctx, "e1", redeliver); err != nil {
		t.Fatal(err)
	}
	record := atStart.Delivery // the attempt's record, from its old read
	record.State, record.Attempts, record.NextAttemptAt = DeliveryDead, 1, time.Time{}
	if _, err := db.SetDelivery(ctx, "e1", record); !errors.Is(err, ErrStateChanged) {
		t.Fatalf("stale record: %v, want ErrStateChanged", err)
	}
	if err := db.SetDeliveries(ctx, map[string]Delivery{"e1": record}); !errors.Is(err, ErrStateChanged) {
		t.Fatalf("stale record in a batch: %v, want ErrStateChanged", err)
	}
	ev, _ := db.Event(ctx, "e1")
	if ev.Delivery.State != DeliveryPending || ev.Delivery.Version != 2 {
		t.Fatalf("after the stale record: %+v", ev.Delivery)
	}
	if due, _ := db.DueEvents(ctx, time.Now().Add(time.Hour), 10); len(due) != 1 {
		t.Fatalf("due = %+v", due)
	}
	// Version 0 (a record built from scratch) writes unconditionally.
	if ev, err := db.SetDelivery(ctx, "e1", Delivery{State: DeliveryDead}); err != nil || ev.Delivery.Version != 3 {
		t.Fatalf("unconditional write: %+v, %v", ev, err)
	}
}

// TestOutboxStatsCheap: the count is right through every change of the
// outbox and a reopen, and a scrape costs the same with 2,000 events
// pending as with 10 (it does not walk the index).
func TestOutboxStatsCheap(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenBadgerUnsynced(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	base := time.Unix(100000, 0).UTC()
	for i := 0; i < 10; i++ {
		finish(t, db, fmt.Sprintf("a%04d", i), "p", fmt.Sprintf("e%04d", i), base.Add(time.Duration(i)*time.Second))
	}
	stats := func() { db.OutboxStats(ctx) }
	small := testing.AllocsPerRun(20, stats)
	for i := 10; i < 2010; i++ {
		finish(t, db, fmt.Sprintf("a%04d", i), "p", fmt.Sprintf("e%04d", i), base.Add(time.Duration(i)*time.Second))
	}
	if large := testing.AllocsPerRun(20, stats); large > small+10 {
		t.Fatalf("OutboxStats: %v allocations with 2,010 events pending, %v with 10: it walks the index", large, small)
	}
	want := func(n int, oldest time.Time) {
		t.Helper()
		got, o, err := db.OutboxStats(ctx)
		if err != nil || got != n || !o.Equal(oldest) {
			t.Fatalf("stats = %d %v %v, want %d %v", got, o, err, n, oldest)
		}
	}
	want(2010, base)
	ev, _ := db.Event(ctx, "e0000")
	dl := ev.Delivery
	dl.State, dl.NextAttemptAt = DeliveryDelivered, time.Time{}
	if _, err := db.SetDelivery(ctx, "e0000", dl); err != nil {
		t.Fatal(err)
	}
	want(2009, base.Add(time.Second))
	ev, _ = db.Event(ctx, "e0001")
	dl = ev.Delivery
	dl.Attempts, dl.NextAttemptAt = 1, base.Add(time.Hour) // a retry: still pending
	if _, err := db.SetDelivery(ctx, "e0001", dl); err != nil {
		t.Fatal(err)
	}
	want(2009, base.Add(time.Second))
	ev, _ = db.Event(ctx, "e0000")
	dl = ev.Delivery
	dl.State, dl.NextAttemptAt = DeliveryPending, base // redelivered
	if err := db.SetDeliveries(ctx, map[string]Delivery{"e0000": dl}); err != nil {
		t.Fatal(err)
	}
	want(2010, base)
	db.Close()
	db = openTest(t, dir)
	defer db.Close()
	want(2010, base)
}

func damagedCount(kind string) float64 {
	var m dto.Metric
	if err := metrics.DamagedRecords.WithLabelValues(kind).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
