// Package storetest is the conformance suite of the store.Store contract:
// every implementation runs it from its own tests, so that the dispatcher,
// the sweeper and the service can rely on one behaviour whatever the store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// Option adjusts the suite to what an implementation can do.
type Option func(*options)

type options struct {
	disrupt func(t *testing.T)
	damage  func(t *testing.T, db store.Store, kind, id string)
	pages   int
}

// Damage gives the suite a way to make one stored record unreadable: the
// intent (kind "intent") or outbox event ("event") with the id must no
// longer decode, its indexes left as they were. Without it, the damaged
// records test fails.
func Damage(fn func(t *testing.T, db store.Store, kind, id string)) Option {
	return func(o *options) { o.damage = fn }
}

// Disrupt gives the suite a way to cut the store's connections to its
// database, as a failover or a network cut would. The suite calls it inside
// a transition (so the transaction in progress is lost) and while many
// transitions run, then checks that every intent has its transition and
// its event or neither, and that no acknowledged transition was lost.
func Disrupt(fn func(t *testing.T)) Option { return func(o *options) { o.disrupt = fn } }

// Pages sets how many intents the cursor tests page through. Default: 10000.
func Pages(n int) Option { return func(o *options) { o.pages = n } }

// Run runs the suite. open returns a new, empty store for each test; the
// suite closes it (once more after a test that closed it itself).
func Run(t *testing.T, open func(t *testing.T) store.Store, opts ...Option) {
	o := options{pages: 10000}
	for _, opt := range opts {
		opt(&o)
	}
	s := suite{open: open, o: o}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"CreateGet", s.createGet},
		{"CreateGroupOneWinnerPerID", s.createGroup},
		{"UpdateWritesEvent", s.updateWritesEvent},
		{"UpdateRefusals", s.updateRefusals},
		{"UpdateBatch", s.updateBatch},
		{"Annotate", s.annotate},
		{"ListIndexes", s.listIndexes},
		{"ListStatus", s.listStatus},
		{"ListBeforeEpoch", s.listBeforeEpoch},
		{"Outbox", s.outbox},
		{"SetDeliveriesAtomic", s.setDeliveriesAtomic},
		{"Prune", s.prune},
		{"PruneRacesRedelivery", s.pruneRacesRedelivery},
		{"ConcurrentUpdatesOneTransition", s.concurrentUpdates},
		{"TransitionAndEventAtomic", s.atomic},
		{"CursorsPageWithoutGapsOrRepeats", s.cursors},
		{"Closed", s.closed},
		{"DeliveryVersion", s.deliveryVersion},
		{"DamagedRecords", s.damagedRecords},
		{"ClaimsOneOwnerAtATime", s.claims},
		{"ClaimsConcurrentOwnersNeverShare", s.claimsConcurrent},
		{"ClaimDueEventIsTheStoredOne", s.claimedEvent},
		{"Leases", s.leases},
	} {
		t.Run(tc.name, tc.fn)
	}
}

type suite struct {
	open func(t *testing.T) store.Store
	o    options
}

func (s suite) db(t *testing.T) store.Store {
	t.Helper()
	db := s.open(t)
	t.Cleanup(func() { db.Close() })
	return db
}

// base is the suite's clock: fixed, so that orders are known.
var base = time.Unix(1_800_000_000, 123456789).UTC()

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func pending(id string, exp time.Time) *store.Intent {
	return &store.Intent{ID: id, Profile: "p", Bucket: "b", Key: "k/" + id, ContentType: "image/png",
		MaxSize: 10, Status: store.StatusPending, CreatedAt: exp.Add(-time.Minute), ExpiresAt: exp, UpdatedAt: exp.Add(-time.Minute)}
}

// to returns a transition to status announced by event evID, created at
// base, that stamps the intent's UpdatedAt with at.
func to(status store.Status, evID string, at time.Time) store.Transition {
	return func(in *store.Intent) (store.Event, error) {
		in.Status = status
		in.ETag = "etag-" + evID
		in.UpdatedAt = at
		typ := map[store.Status]string{store.StatusCompleted: store.EventCompleted, store.StatusRejected: store.EventRejected,
			store.StatusFailed: store.EventFailed, store.StatusExpired: store.EventExpired}[status]
		return store.Event{ID: evID, Type: typ, CreatedAt: at}, nil
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ids(l []*store.Intent) []string {
	out := make([]string, len(l))
	for i, in := range l {
		out[i] = in.ID
	}
	return out
}

func (s suite) createGet(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	in := pending("a1", base)
	in.Metadata = []byte(`{"b":1,"a":"ü"}`) // kept in its order, not normalized
	in.Filename = "photo.png"
	in.Size = 7
	in.UploadID, in.PartSize, in.PartCount = "up", 5, 2
	must(t, db.Create(ctx, in))
	if err := db.Create(ctx, pending("a1", base)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	if _, err := db.Get(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown: %v, want ErrNotFound", err)
	}
	done := pending("a2", base)
	done.Status = store.StatusCompleted
	if err := db.Create(ctx, done); err == nil {
		t.Fatal("created an intent that is not pending")
	}
	if _, err := db.Get(ctx, "a2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused create stored the intent: %v", err)
	}
	got, err := db.Get(ctx, "a1")
	must(t, err)
	if got.Key != "k/a1" || got.Status != store.StatusPending || string(got.Metadata) != `{"b":1,"a":"ü"}` ||
		!got.ExpiresAt.Equal(in.ExpiresAt) || !got.CreatedAt.Equal(in.CreatedAt) || got.Filename != "photo.png" ||
		got.Size != 7 || got.UploadID != "up" || got.PartSize != 5 || got.PartCount != 2 || got.MaxSize != 10 {
		t.Fatalf("got %+v", got)
	}
}

// createGroup: concurrent creates, some of the same ids, each id stored
// once, and every caller told whether it was its own.
func (s suite) createGroup(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	const n, copies = 40, 3
	var mu sync.Mutex
	wins := map[string]int{}
	var wg sync.WaitGroup
	for i := range n * copies {
		wg.Go(func() {
			id := fmt.Sprintf("g%03d", i%n)
			in := pending(id, base)
			in.Key = fmt.Sprintf("copy-%d", i/n)
			err := db.Create(ctx, in)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins[id]++
			case errors.Is(err, store.ErrExists):
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		id := fmt.Sprintf("g%03d", i)
		if wins[id] != 1 {
			t.Errorf("%s created %d times", id, wins[id])
		}
		if _, err := db.Get(ctx, id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}

func (s suite) updateWritesEvent(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	must(t, db.Create(ctx, pending("a", base)))
	at := base.Add(time.Second)
	out, err := db.Update(ctx, "a", store.StatusPending, to(store.StatusCompleted, "e1", at))
	must(t, err)
	if out.Status != store.StatusCompleted || out.EventID != "e1" || !slices.Equal(out.Events, []string{"e1"}) || out.ETag != "etag-e1" {
		t.Fatalf("updated intent %+v", out)
	}
	got, err := db.Get(ctx, "a")
	must(t, err)
	if got.Status != store.StatusCompleted || got.EventID != "e1" || !slices.Equal(got.Events, []string{"e1"}) {
		t.Fatalf("stored intent %+v", got)
	}
	ev, err := db.Event(ctx, "e1")
	must(t, err)
	if ev.Type != store.EventCompleted || !ev.CreatedAt.Equal(at) || ev.Intent.Status != store.StatusCompleted ||
		ev.Intent.ETag != "etag-e1" || ev.Intent.EventID != "e1" || ev.Intent.Events != nil ||
		ev.Delivery.State != store.DeliveryPending || !ev.Delivery.NextAttemptAt.Equal(at) || ev.Delivery.Attempts != 0 {
		t.Fatalf("event %+v", ev)
	}
	evs, err := db.Events(ctx, "", "", 10)
	must(t, err)
	if len(evs) != 1 || evs[0].ID != "e1" {
		t.Fatalf("events %+v", evs)
	}
	if _, err := db.Event(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown event: %v, want ErrNotFound", err)
	}
	// A final intent takes no second transition from pending.
	if _, err := db.Update(ctx, "a", store.StatusPending, to(store.StatusFailed, "e2", at)); !errors.Is(err, store.ErrStateChanged) {
		t.Fatalf("second transition: %v, want ErrStateChanged", err)
	}
	// A final intent's own status may move on (a re-check's rejection),
	// with a second event.
	out, err = db.Update(ctx, "a", store.StatusCompleted, to(store.StatusRejected, "e3", at.Add(time.Second)))
	must(t, err)
	if !slices.Equal(out.Events, []string{"e1", "e3"}) || out.EventID != "e3" {
		t.Fatalf("events of intent %v, last %s", out.Events, out.EventID)
	}
	if evs, _ := db.Events(ctx, "", "", 10); len(evs) != 2 || evs[1].ID != "e3" {
		t.Fatalf("events after two transitions: %+v", evs)
	}
}

func (s suite) updateRefusals(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	must(t, db.Create(ctx, pending("a", base)))
	if _, err := db.Update(ctx, "nope", store.StatusPending, to(store.StatusFailed, "x", base)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update unknown: %v, want ErrNotFound", err)
	}
	boom := errors.New("boom")
	_, err := db.Update(ctx, "a", store.StatusPending, func(in *store.Intent) (store.Event, error) {
		in.Status = store.StatusRejected
		return store.Event{}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("transition's error: %v, want it returned", err)
	}
	if _, err := db.Update(ctx, "a", store.StatusPending, func(in *store.Intent) (store.Event, error) {
		in.Status = store.StatusRejected
		return store.Event{}, nil
	}); err == nil {
		t.Fatal("transition without an event accepted")
	}
	if _, err := db.Update(ctx, "a", store.StatusCompleted, to(store.StatusRejected, "x", base)); !errors.Is(err, store.ErrStateChanged) {
		t.Fatalf("update from the wrong status: %v, want ErrStateChanged", err)
	}
	got, err := db.Get(ctx, "a")
	must(t, err)
	evs, err := db.Events(ctx, "", "", 10)
	must(t, err)
	if got.Status != store.StatusPending || got.EventID != "" || len(evs) != 0 {
		t.Fatalf("status %s, %d events after refused transitions", got.Status, len(evs))
	}
}

func (s suite) annotate(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	must(t, db.Create(ctx, pending("a", base)))
	out, err := db.Annotate(ctx, "a", store.StatusPending, func(in *store.Intent) {
		in.Rejecting, in.Reason, in.Detail = true, "too_large", "11 bytes"
	})
	must(t, err)
	if !out.Rejecting || out.Reason != "too_large" {
		t.Fatalf("annotated %+v", out)
	}
	got, _ := db.Get(ctx, "a")
	if !got.Rejecting || got.Reason != "too_large" || got.Detail != "11 bytes" || got.Status != store.StatusPending {
		t.Fatalf("stored %+v", got)
	}
	if evs, _ := db.Events(ctx, "", "", 10); len(evs) != 0 {
		t.Fatalf("annotate wrote %d events", len(evs))
	}
	if _, err := db.Annotate(ctx, "nope", store.StatusPending, func(*store.Intent) {}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("annotate unknown: %v", err)
	}
	if _, err := db.Annotate(ctx, "a", store.StatusCompleted, func(*store.Intent) {}); !errors.Is(err, store.ErrStateChanged) {
		t.Fatalf("annotate from the wrong status: %v", err)
	}
	for name, fn := range map[string]func(*store.Intent){
		"status": func(in *store.Intent) { in.Status = store.StatusFailed },
		"expiry": func(in *store.Intent) { in.ExpiresAt = in.ExpiresAt.Add(time.Hour) },
		"id":     func(in *store.Intent) { in.ID = "b" },
	} {
		if _, err := db.Annotate(ctx, "a", store.StatusPending, func(in *store.Intent) { in.Detail = "changed"; fn(in) }); err == nil {
			t.Errorf("annotate changing the %s accepted", name)
		}
	}
	if got, _ := db.Get(ctx, "a"); got.Status != store.StatusPending || got.Detail != "11 bytes" {
		t.Fatalf("refused annotations wrote: %+v", got)
	}
	if _, err := db.Get(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("annotate changing the id wrote b: %v", err)
	}
}

// listIndexes: each time index lists the intents in its part of their
// life, by its time then id, strictly before t, in pages.
func (s suite) listIndexes(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	// Expiries 30, 10, 20, 40, 10 seconds after base (a tie broken by id).
	for i, off := range []int{30, 10, 20, 40, 10} {
		must(t, db.Create(ctx, pending(fmt.Sprintf("i%d", i), base.Add(time.Duration(off)*time.Second))))
	}
	list := func(idx store.Index, before time.Time, limit int) []string {
		t.Helper()
		var all []string
		var cur store.Cursor
		for {
			page, next, err := db.List(ctx, idx, before, cur, limit)
			must(t, err)
			if len(page) > limit {
				t.Fatalf("%s: page of %d over limit %d", idx, len(page), limit)
			}
			all = append(all, ids(page)...)
			if next == nil {
				return all
			}
			cur = next
		}
	}
	if got := list(store.ByExpiry, base.Add(35*time.Second), 10); fmt.Sprint(got) != "[i1 i4 i2 i0]" {
		t.Fatalf("expiry: %v, want [i1 i4 i2 i0]", got)
	}
	if got := list(store.ByExpiry, base.Add(35*time.Second), 1); fmt.Sprint(got) != "[i1 i4 i2 i0]" {
		t.Fatalf("expiry by pages of 1: %v", got)
	}
	// Strictly before t.
	if got := list(store.ByExpiry, base.Add(20*time.Second), 10); fmt.Sprint(got) != "[i1 i4]" {
		t.Fatalf("expiry before 20s: %v, want [i1 i4]", got)
	}
	if page, next, err := db.List(ctx, store.ByExpiry, base.Add(time.Hour), nil, 2); err != nil || len(page) != 2 || next == nil {
		t.Fatalf("limit 2: %d intents, cursor %v, %v", len(page), next, err)
	}
	if page, next, err := db.List(ctx, store.ByExpiry, base.Add(time.Hour), nil, 5); err != nil || len(page) != 5 || next != nil {
		t.Fatalf("a last full page: %d intents, cursor %v (want none), %v", len(page), next, err)
	}
	if _, _, err := db.List(ctx, store.Index("nope"), base, nil, 10); err == nil {
		t.Fatal("unknown index accepted")
	}

	// i0 and i1 finish: off the expiry index, onto the re-check index by
	// expiry; once settled, onto the finished index by their last change.
	_, err := db.Update(ctx, "i0", store.StatusPending, to(store.StatusCompleted, "e0", base.Add(50*time.Second)))
	must(t, err)
	_, err = db.Update(ctx, "i1", store.StatusPending, to(store.StatusExpired, "e1", base.Add(60*time.Second)))
	must(t, err)
	far := base.Add(time.Hour)
	if got := list(store.ByExpiry, far, 10); fmt.Sprint(got) != "[i4 i2 i3]" {
		t.Fatalf("expiry after transitions: %v", got)
	}
	if got := list(store.ByRecheck, far, 10); fmt.Sprint(got) != "[i1 i0]" {
		t.Fatalf("recheck: %v, want [i1 i0]", got)
	}
	if got := list(store.ByFinished, far, 10); len(got) != 0 {
		t.Fatalf("finished before settling: %v", got)
	}
	for id, at := range map[string]time.Time{"i0": base.Add(70 * time.Second), "i1": base.Add(80 * time.Second)} {
		_, err := db.Annotate(ctx, id, map[string]store.Status{"i0": store.StatusCompleted, "i1": store.StatusExpired}[id], func(in *store.Intent) {
			in.Settled, in.UpdatedAt = true, at
		})
		must(t, err)
	}
	if got := list(store.ByRecheck, far, 10); len(got) != 0 {
		t.Fatalf("recheck after settling: %v", got)
	}
	if got := list(store.ByFinished, far, 10); fmt.Sprint(got) != "[i0 i1]" {
		t.Fatalf("finished: %v, want [i0 i1]", got)
	}
	if got := list(store.ByFinished, base.Add(80*time.Second), 10); fmt.Sprint(got) != "[i0]" {
		t.Fatalf("finished before 80s: %v, want [i0]", got)
	}
}

func (s suite) listStatus(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	for i, p := range []string{"b", "a", "b", "a", "c"} {
		in := pending(fmt.Sprintf("s%d", 4-i), base)
		in.Profile = p
		must(t, db.Create(ctx, in))
	}
	_, err := db.Update(ctx, "s0", store.StatusPending, to(store.StatusFailed, "e", base))
	must(t, err)
	all := func(status store.Status, profile string, limit int) []string {
		t.Helper()
		var out []string
		var cur store.Cursor
		for {
			page, next, err := db.ListStatus(ctx, status, profile, cur, limit)
			must(t, err)
			if len(page) > limit {
				t.Fatalf("page of %d over limit %d", len(page), limit)
			}
			for _, in := range page {
				if in.Status != status || (profile != "" && in.Profile != profile) {
					t.Fatalf("listed %s (%s, %s) for %s %q", in.ID, in.Status, in.Profile, status, profile)
				}
			}
			out = append(out, ids(page)...)
			if next == nil {
				return out
			}
			cur = next
		}
	}
	if got := all(store.StatusPending, "b", 10); fmt.Sprint(got) != "[s2 s4]" {
		t.Fatalf("pending of b: %v, want [s2 s4] (id order)", got)
	}
	if got := all(store.StatusPending, "a", 1); fmt.Sprint(got) != "[s1 s3]" {
		t.Fatalf("pending of a by pages of 1: %v, want [s1 s3]", got)
	}
	got := all(store.StatusPending, "", 1)
	slices.Sort(got)
	if fmt.Sprint(got) != "[s1 s2 s3 s4]" {
		t.Fatalf("pending of every profile: %v", got)
	}
	if got := all(store.StatusFailed, "", 10); fmt.Sprint(got) != "[s0]" {
		t.Fatalf("failed: %v", got)
	}
	if got := all(store.StatusCompleted, "", 10); len(got) != 0 {
		t.Fatalf("completed: %v", got)
	}
}

func (s suite) outbox(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	// Three events created 3s, 1s and 2s after base, in that write order.
	for i, off := range []int{3, 1, 2} {
		id := fmt.Sprintf("i%d", i)
		in := pending(id, base)
		in.Profile = "profile-with-a-long-name-" + id
		must(t, db.Create(ctx, in))
		_, err := db.Update(ctx, id, store.StatusPending, to(store.StatusCompleted, fmt.Sprintf("e%d", i), base.Add(time.Duration(off)*time.Second)))
		must(t, err)
	}
	n, oldest, err := db.OutboxStats(ctx)
	must(t, err)
	if n != 3 || !oldest.Equal(base.Add(time.Second)) {
		t.Fatalf("stats: %d pending, oldest %v; want 3, %v", n, oldest, base.Add(time.Second))
	}
	due, err := db.DueEvents(ctx, base.Add(2*time.Second), 10) // at or before t
	must(t, err)
	sort.Slice(due, func(i, j int) bool { return due[i].EventID < due[j].EventID })
	if fmt.Sprint(due) != "[{e1 profile-with-a-long-name-i1} {e2 profile-with-a-long-name-i2}]" {
		t.Fatalf("due: %v", due)
	}
	// The limit is per profile: each of the three profiles has one due.
	// (profiles in any order).
	due, err = db.DueEvents(ctx, base.Add(time.Hour), 1)
	must(t, err)
	sort.Slice(due, func(i, j int) bool { return due[i].EventID < due[j].EventID })
	if fmt.Sprint(due) != "[{e0 profile-with-a-long-name-i0} {e1 profile-with-a-long-name-i1} {e2 profile-with-a-long-name-i2}]" {
		t.Fatalf("due, limit 1 per profile: %v", due)
	}
	// e1 is retried later, e2 delivered: the due index follows.
	retry := store.Delivery{State: store.DeliveryPending, Attempts: 1, NextAttemptAt: base.Add(10 * time.Second), LastStatus: 500, LastError: "boom"}
	ev, err := db.SetDelivery(ctx, "e1", retry)
	must(t, err)
	if ev.ID != "e1" || ev.Delivery.Attempts != 1 || ev.Intent.ID != "i1" {
		t.Fatalf("SetDelivery returned %+v", ev)
	}
	delivered := store.Delivery{State: store.DeliveryDelivered, Attempts: 1, LastAttemptAt: base.Add(5 * time.Second),
		DeliveredAt: base.Add(5 * time.Second), LastStatus: 200, Response: []byte(`{"ok":true}`)}
	_, err = db.SetDelivery(ctx, "e2", delivered)
	must(t, err)
	due, err = db.DueEvents(ctx, base.Add(time.Hour), 10)
	must(t, err)
	if fmt.Sprint(due) != "[{e0 profile-with-a-long-name-i0} {e1 profile-with-a-long-name-i1}]" {
		t.Fatalf("due after rescheduling: %v", due)
	}
	if n, oldest, _ := db.OutboxStats(ctx); n != 2 || !oldest.Equal(base.Add(time.Second)) {
		t.Fatalf("stats after delivery: %d, %v (the retried event keeps its creation time)", n, oldest)
	}
	got, err := db.Event(ctx, "e2")
	must(t, err)
	if got.Delivery.State != store.DeliveryDelivered || string(got.Delivery.Response) != `{"ok":true}` || !got.Delivery.DeliveredAt.Equal(delivered.DeliveredAt) {
		t.Fatalf("delivered event %+v", got.Delivery)
	}
	if _, err := db.SetDelivery(ctx, "nope", delivered); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetDelivery unknown: %v, want ErrNotFound", err)
	}
	// Events: write (id) order, from after, by state.
	all, err := db.Events(ctx, "", "", 10)
	must(t, err)
	var evIDs []string
	for _, e := range all {
		evIDs = append(evIDs, e.ID)
	}
	if fmt.Sprint(evIDs) != "[e0 e1 e2]" {
		t.Fatalf("events: %v", evIDs)
	}
	if page, _ := db.Events(ctx, "", "e0", 1); len(page) != 1 || page[0].ID != "e1" {
		t.Fatalf("events after e0, limit 1: %+v", page)
	}
	if page, _ := db.Events(ctx, store.DeliveryDelivered, "", 10); len(page) != 1 || page[0].ID != "e2" {
		t.Fatalf("delivered events: %+v", page)
	}
	if page, _ := db.Events(ctx, store.DeliveryPending, "e0", 10); len(page) != 1 || page[0].ID != "e1" {
		t.Fatalf("pending events after e0: %+v", page)
	}
	// Dead and skipped leave the due index as delivered does.
	_, err = db.SetDelivery(ctx, "e0", store.Delivery{State: store.DeliveryDead, Attempts: 9})
	must(t, err)
	_, err = db.SetDelivery(ctx, "e1", store.Delivery{State: store.DeliverySkipped})
	must(t, err)
	if due, _ := db.DueEvents(ctx, base.Add(time.Hour), 10); len(due) != 0 {
		t.Fatalf("due after dead and skipped: %v", due)
	}
	if n, oldest, _ := db.OutboxStats(ctx); n != 0 || !oldest.IsZero() {
		t.Fatalf("stats of an empty outbox: %d, %v", n, oldest)
	}
	// A redelivery puts a final event back in the due index.
	_, err = db.SetDelivery(ctx, "e0", store.Delivery{State: store.DeliveryPending, NextAttemptAt: base})
	must(t, err)
	if due, _ := db.DueEvents(ctx, base, 10); len(due) != 1 || due[0].EventID != "e0" {
		t.Fatalf("due after redelivery: %v", due)
	}
}

func (s suite) setDeliveriesAtomic(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	for i := range 3 {
		id := fmt.Sprintf("i%d", i)
		must(t, db.Create(ctx, pending(id, base)))
		_, err := db.Update(ctx, id, store.StatusPending, to(store.StatusCompleted, "e"+id, base))
		must(t, err)
	}
	done := store.Delivery{State: store.DeliveryDelivered, Attempts: 1, DeliveredAt: base}
	err := db.SetDeliveries(ctx, map[string]store.Delivery{"ei0": done, "ei1": done, "nope": done})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetDeliveries with an unknown event: %v, want ErrNotFound", err)
	}
	if n, _, _ := db.OutboxStats(ctx); n != 3 {
		t.Fatalf("a failed SetDeliveries wrote: %d pending, want 3", n)
	}
	must(t, db.SetDeliveries(ctx, map[string]store.Delivery{"ei0": done, "ei1": done}))
	if due, _ := db.DueEvents(ctx, base.Add(time.Hour), 10); len(due) != 1 || due[0].EventID != "ei2" {
		t.Fatalf("due after SetDeliveries: %v", due)
	}
	must(t, db.SetDeliveries(ctx, nil))
}

func (s suite) prune(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	must(t, db.Create(ctx, pending("a", base)))
	if err := db.Prune(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("prune unknown: %v", err)
	}
	if err := db.Prune(ctx, "a"); !errors.Is(err, store.ErrStateChanged) {
		t.Fatalf("prune pending: %v, want ErrStateChanged", err)
	}
	_, err := db.Update(ctx, "a", store.StatusPending, to(store.StatusCompleted, "e1", base))
	must(t, err)
	if err := db.Prune(ctx, "a"); !errors.Is(err, store.ErrStateChanged) {
		t.Fatalf("prune unsettled: %v, want ErrStateChanged", err)
	}
	_, err = db.Annotate(ctx, "a", store.StatusCompleted, func(in *store.Intent) { in.Settled = true })
	must(t, err)
	// Its event is still pending delivery: kept.
	if err := db.Prune(ctx, "a"); !errors.Is(err, store.ErrStateChanged) {
		t.Fatalf("prune with an undelivered event: %v, want ErrStateChanged", err)
	}
	if _, err := db.Get(ctx, "a"); err != nil {
		t.Fatalf("intent with an undelivered event gone: %v", err)
	}
	_, err = db.SetDelivery(ctx, "e1", store.Delivery{State: store.DeliveryDelivered, Attempts: 1})
	must(t, err)
	must(t, db.Prune(ctx, "a"))
	if _, err := db.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("pruned intent: %v", err)
	}
	if _, err := db.Event(ctx, "e1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("pruned intent's event: %v", err)
	}
	if l, _, _ := db.List(ctx, store.ByFinished, base.Add(time.Hour), nil, 10); len(l) != 0 {
		t.Fatalf("pruned intent still listed: %v", ids(l))
	}
	if l, _, _ := db.ListStatus(ctx, store.StatusCompleted, "", nil, 10); len(l) != 0 {
		t.Fatalf("pruned intent still listed by status: %v", ids(l))
	}
}

// pruneRacesRedelivery: a prune and a redelivery of the intent's event
// race; never is the intent gone while its event is pending again.
func (s suite) pruneRacesRedelivery(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	for round := range 30 {
		id, eid := fmt.Sprintf("r%02d", round), fmt.Sprintf("r%02d-e", round)
		must(t, db.Create(ctx, pending(id, base)))
		_, err := db.Update(ctx, id, store.StatusPending, to(store.StatusCompleted, eid, base))
		must(t, err)
		_, err = db.SetDelivery(ctx, eid, store.Delivery{State: store.DeliveryDelivered, Attempts: 1})
		must(t, err)
		_, err = db.Annotate(ctx, id, store.StatusCompleted, func(in *store.Intent) { in.Settled = true })
		must(t, err)
		var pruneErr, redeliverErr error
		var wg sync.WaitGroup
		wg.Go(func() { pruneErr = db.Prune(ctx, id) })
		wg.Go(func() {
			_, redeliverErr = db.SetDelivery(ctx, eid, store.Delivery{State: store.DeliveryPending, NextAttemptAt: base})
		})
		wg.Wait()
		_, getErr := db.Get(ctx, id)
		ev, evErr := db.Event(ctx, eid)
		switch {
		case pruneErr == nil && redeliverErr == nil:
			// Redelivered first would have refused the prune; pruned first
			// leaves nothing to redeliver.
			t.Fatalf("round %d: both the prune and the redelivery succeeded", round)
		case pruneErr == nil:
			if !errors.Is(getErr, store.ErrNotFound) || !errors.Is(evErr, store.ErrNotFound) ||
				!(errors.Is(redeliverErr, store.ErrNotFound) || errors.Is(redeliverErr, store.ErrConflict)) {
				t.Fatalf("round %d: pruned, yet intent %v, event %v, redelivery %v", round, getErr, evErr, redeliverErr)
			}
		case errors.Is(pruneErr, store.ErrStateChanged) || errors.Is(pruneErr, store.ErrConflict):
			if getErr != nil || evErr != nil || (redeliverErr == nil && ev.Delivery.State != store.DeliveryPending) {
				t.Fatalf("round %d: prune refused, yet intent %v, event %v", round, getErr, evErr)
			}
		default:
			t.Fatalf("round %d: prune: %v", round, pruneErr)
		}
	}
}

// concurrentUpdates: 50 transitions of one intent at once write exactly
// one transition and one event.
func (s suite) concurrentUpdates(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	const n = 50
	for round := range 3 {
		id := fmt.Sprintf("c%d", round)
		must(t, db.Create(ctx, pending(id, base)))
		var mu sync.Mutex
		var winners []string
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				evID := fmt.Sprintf("%s-e%02d", id, i)
				status := []store.Status{store.StatusCompleted, store.StatusFailed, store.StatusExpired}[i%3]
				_, err := db.Update(ctx, id, store.StatusPending, to(status, evID, base))
				switch {
				case err == nil:
					mu.Lock()
					winners = append(winners, evID)
					mu.Unlock()
				case errors.Is(err, store.ErrStateChanged), errors.Is(err, store.ErrConflict):
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: %d transitions succeeded: %v", round, len(winners), winners)
		}
		got, err := db.Get(ctx, id)
		must(t, err)
		if !slices.Equal(got.Events, winners) {
			t.Fatalf("round %d: intent's events %v, winner %v", round, got.Events, winners)
		}
	}
	evs, err := db.Events(ctx, "", "", 1000)
	must(t, err)
	if len(evs) != 3 {
		t.Fatalf("%d events for 3 intents", len(evs))
	}
}

// atomic: a transition and its event are written together or not at all,
// even when the connection to the database is cut in the middle of the
// transaction; an acknowledged transition is never lost.
func (s suite) atomic(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	if s.o.disrupt != nil {
		// Cut inside the transaction, after the intent's row was read
		// (and, where rows are locked, locked).
		must(t, db.Create(ctx, pending("cut", base)))
		_, err := db.Update(ctx, "cut", store.StatusPending, func(in *store.Intent) (store.Event, error) {
			s.o.disrupt(t)
			return to(store.StatusCompleted, "cut-e", base)(in)
		})
		if err == nil {
			t.Fatal("a transition whose connection was cut mid-transaction reported success")
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("cut connection: %v, want ErrUnavailable", err)
		}
		s.checkBothOrNeither(t, db, "cut", "cut-e", false)
	}
	// Many transitions while the connections are cut again and again (or
	// not at all, for a store without them): each intent has both or
	// neither, and every acknowledged one has both.
	const n = 120
	for i := range n {
		must(t, retry(ctx, func() error { return db.Create(ctx, pending(fmt.Sprintf("a%03d", i), base)) }))
	}
	stop := make(chan struct{})
	var cutter sync.WaitGroup
	if s.o.disrupt != nil {
		cutter.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(rand.IntN(20)) * time.Millisecond):
					s.o.disrupt(t)
				}
			}
		})
	}
	acked := make([]bool, n)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				_, err := db.Update(ctx, fmt.Sprintf("a%03d", i), store.StatusPending, to(store.StatusCompleted, fmt.Sprintf("a%03d-e", i), base))
				acked[i] = err == nil
			}
		})
	}
	wg.Wait()
	close(stop)
	cutter.Wait()
	for i := range n {
		s.checkBothOrNeither(t, db, fmt.Sprintf("a%03d", i), fmt.Sprintf("a%03d-e", i), acked[i])
	}
}

// checkBothOrNeither: the intent is completed with its event, or pending
// without; acked requires the former.
func (s suite) checkBothOrNeither(t *testing.T, db store.Store, id, evID string, acked bool) {
	t.Helper()
	ctx := ctxT(t)
	var in *store.Intent
	var evErr error
	err := retry(ctx, func() error {
		var err error
		if in, err = db.Get(ctx, id); err != nil {
			return err
		}
		_, evErr = db.Event(ctx, evID)
		if errors.Is(evErr, store.ErrUnavailable) {
			return evErr
		}
		return nil
	})
	must(t, err)
	switch {
	case in.Status == store.StatusCompleted && evErr == nil && slices.Equal(in.Events, []string{evID}):
	case in.Status == store.StatusPending && errors.Is(evErr, store.ErrNotFound) && len(in.Events) == 0:
		if acked {
			t.Errorf("%s: acknowledged transition lost", id)
		}
	default:
		t.Errorf("%s: status %s, events %v, its event: %v: half a transition", id, in.Status, in.Events, evErr)
	}
}

// retry repeats fn while the store is unavailable (reconnecting after a
// cut), bounded by ctx.
func retry(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if !errors.Is(err, store.ErrUnavailable) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// cursors: paging through many intents, of two profiles, with many equal
// times, returns each exactly once and in order.
func (s suite) cursors(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	n := s.o.pages
	order := rand.Perm(n)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				in := pending(fmt.Sprintf("x%06d", i), base.Add(time.Duration(i%37)*time.Second))
				in.Profile = []string{"p", "q"}[i%2]
				if err := db.Create(ctx, in); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for _, i := range order {
		work <- i
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	check := func(name string, page func(store.Cursor) ([]*store.Intent, store.Cursor, error), less func(a, b *store.Intent) bool, want int) {
		t.Helper()
		seen := make(map[string]bool, want)
		var prev *store.Intent
		var cur store.Cursor
		for pages := 0; ; pages++ {
			if pages > want {
				t.Fatalf("%s: more pages than intents", name)
			}
			l, next, err := page(cur)
			must(t, err)
			for _, in := range l {
				if seen[in.ID] {
					t.Fatalf("%s: %s listed twice", name, in.ID)
				}
				seen[in.ID] = true
				if prev != nil && !less(prev, in) {
					t.Fatalf("%s: %s listed after %s", name, in.ID, prev.ID)
				}
				prev = in
			}
			if next == nil {
				break
			}
			cur = next
		}
		if len(seen) != want {
			t.Fatalf("%s: %d intents listed, want %d", name, len(seen), want)
		}
	}
	byExpiry := func(a, b *store.Intent) bool {
		return a.ExpiresAt.Before(b.ExpiresAt) || (a.ExpiresAt.Equal(b.ExpiresAt) && a.ID < b.ID)
	}
	check("expiry", func(c store.Cursor) ([]*store.Intent, store.Cursor, error) {
		return db.List(ctx, store.ByExpiry, base.Add(time.Hour), c, 97)
	}, byExpiry, n)
	byID := func(a, b *store.Intent) bool { return a.ID < b.ID }
	check("status of q", func(c store.Cursor) ([]*store.Intent, store.Cursor, error) {
		return db.ListStatus(ctx, store.StatusPending, "q", c, 101)
	}, byID, n/2)
	// Across profiles the order is the implementation's; each once.
	check("status", func(c store.Cursor) ([]*store.Intent, store.Cursor, error) {
		return db.ListStatus(ctx, store.StatusPending, "", c, 101)
	}, func(a, b *store.Intent) bool { return a.Profile != b.Profile || a.ID < b.ID }, n)
}

func (s suite) closed(t *testing.T) {
	db, ctx := s.open(t), ctxT(t)
	must(t, db.Create(ctx, pending("a", base)))
	must(t, db.Close())
	if err := db.Create(ctx, pending("b", base)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Create after Close: %v, want ErrClosed", err)
	}
	if _, err := db.Get(ctx, "a"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if _, err := db.Update(ctx, "a", store.StatusPending, to(store.StatusFailed, "e", base)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Update after Close: %v, want ErrClosed", err)
	}
	if _, err := db.DueEvents(ctx, base, 10); !errors.Is(err, store.ErrClosed) {
		t.Errorf("DueEvents after Close: %v, want ErrClosed", err)
	}
	if _, err := db.ClaimDue(ctx, "a", base, time.Minute, 10); !errors.Is(err, store.ErrClosed) {
		t.Errorf("ClaimDue after Close: %v, want ErrClosed", err)
	}
	if _, err := db.AcquireLease(ctx, "sweeper", "a", time.Minute); !errors.Is(err, store.ErrClosed) {
		t.Errorf("AcquireLease after Close: %v, want ErrClosed", err)
	}
}

// completed creates intent id of profile and completes it with event evID
// created (and so due) at at.
func completed(t *testing.T, db store.Store, id, profile, evID string, at time.Time) {
	t.Helper()
	ctx := ctxT(t)
	in := pending(id, at)
	in.Profile = profile
	must(t, db.Create(ctx, in))
	_, err := db.Update(ctx, id, store.StatusPending, to(store.StatusCompleted, evID, at))
	must(t, err)
}

// deliveryVersion: Update writes version 1; SetDelivery refuses a record
// whose version is neither 0 nor the stored one and bumps the version;
// version 0 writes unconditionally; SetDeliveries is all or nothing.
func (s suite) deliveryVersion(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	completed(t, db, "a", "p", "ea", base)
	completed(t, db, "b", "p", "eb", base)
	ev, err := db.Event(ctx, "ea")
	must(t, err)
	if ev.Delivery.Version != 1 {
		t.Fatalf("a new event's version is %d, want 1", ev.Delivery.Version)
	}
	read := ev.Delivery // what an attempt starting now would build on
	retry := read
	retry.Attempts, retry.NextAttemptAt = 1, base.Add(time.Minute)
	got, err := db.SetDelivery(ctx, "ea", retry)
	must(t, err)
	if got.Delivery.Version != 2 {
		t.Fatalf("after one SetDelivery: version %d, want 2", got.Delivery.Version)
	}
	stale := read
	stale.State = store.DeliveryDead
	if _, err := db.SetDelivery(ctx, "ea", stale); !errors.Is(err, store.ErrStateChanged) {
		t.Fatalf("SetDelivery of a stale version: %v, want ErrStateChanged", err)
	}
	if ev, _ := db.Event(ctx, "ea"); ev.Delivery.State != store.DeliveryPending || ev.Delivery.Version != 2 || ev.Delivery.Attempts != 1 {
		t.Fatalf("a refused SetDelivery wrote: %+v", ev.Delivery)
	}
	// Version 0: unconditional, still bumped.
	got, err = db.SetDelivery(ctx, "ea", store.Delivery{State: store.DeliveryPending, NextAttemptAt: base})
	must(t, err)
	if got.Delivery.Version != 3 {
		t.Fatalf("after a version-0 write: version %d, want 3", got.Delivery.Version)
	}
	// SetDeliveries: one stale record refuses the whole batch.
	evb, err := db.Event(ctx, "eb")
	must(t, err)
	done := store.Delivery{State: store.DeliveryDelivered, Attempts: 1, DeliveredAt: base}
	okB, staleA := done, done
	okB.Version, staleA.Version = evb.Delivery.Version, 2
	if err := db.SetDeliveries(ctx, map[string]store.Delivery{"ea": staleA, "eb": okB}); !errors.Is(err, store.ErrStateChanged) {
		t.Fatalf("SetDeliveries with a stale version: %v, want ErrStateChanged", err)
	}
	if ev, _ := db.Event(ctx, "eb"); ev.Delivery.State != store.DeliveryPending || ev.Delivery.Version != 1 {
		t.Fatalf("a refused SetDeliveries wrote: %+v", ev.Delivery)
	}
	staleA.Version = 3
	must(t, db.SetDeliveries(ctx, map[string]store.Delivery{"ea": staleA, "eb": okB}))
	for id, want := range map[string]int64{"ea": 4, "eb": 2} {
		if ev, _ := db.Event(ctx, id); ev.Delivery.State != store.DeliveryDelivered || ev.Delivery.Version != want {
			t.Fatalf("%s after SetDeliveries: %+v, want version %d", id, ev.Delivery, want)
		}
	}
}

// damagedRecords: a record that does not decode is a stub (ID and
// Damaged only) in listings, which go on past it, and single reads and
// writes of it wrap ErrDamaged.
func (s suite) damagedRecords(t *testing.T) {
	if s.o.damage == nil {
		t.Fatal("the implementation gave no way to damage a record: pass storetest.Damage")
	}
	db, ctx := s.db(t), ctxT(t)
	for _, id := range []string{"a", "b", "c"} {
		must(t, db.Create(ctx, pending(id, base)))
	}
	s.o.damage(t, db, "intent", "b")
	check := func(what string, ins []*store.Intent, err error) {
		t.Helper()
		must(t, err)
		if len(ins) != 3 || ins[0].ID != "a" || ins[0].Damaged != "" || ins[2].ID != "c" || ins[2].Status != store.StatusPending {
			t.Fatalf("%s: %+v", what, ins)
		}
		if ins[1].ID != "b" || ins[1].Damaged == "" || ins[1].Status != "" {
			t.Fatalf("%s: damaged stub %+v", what, ins[1])
		}
	}
	ins, _, err := db.List(ctx, store.ByExpiry, base.Add(time.Hour), nil, 10)
	check("List", ins, err)
	ins, _, err = db.ListStatus(ctx, store.StatusPending, "", nil, 10)
	check("ListStatus", ins, err)
	page, next, err := db.ListStatus(ctx, store.StatusPending, "p", nil, 2)
	if err != nil || len(page) != 2 || next == nil {
		t.Fatalf("page 1: %d %v %v", len(page), next, err)
	}
	if page, _, err = db.ListStatus(ctx, store.StatusPending, "p", next, 2); err != nil || len(page) != 1 || page[0].ID != "c" {
		t.Fatalf("page 2 after the damaged record: %+v %v", page, err)
	}
	if _, err := db.Get(ctx, "b"); !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("Get of a damaged intent: %v, want ErrDamaged", err)
	}
	if _, err := db.Update(ctx, "b", store.StatusPending, to(store.StatusFailed, "eb", base)); !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("Update of a damaged intent: %v, want ErrDamaged", err)
	}
	// Events.
	for _, id := range []string{"a", "c"} {
		_, err := db.Update(ctx, id, store.StatusPending, to(store.StatusCompleted, "e"+id, base))
		must(t, err)
	}
	completed(t, db, "d", "p", "ed", base)
	s.o.damage(t, db, "event", "ec")
	evs, err := db.Events(ctx, "", "", 10)
	must(t, err)
	if len(evs) != 3 || evs[0].ID != "ea" || evs[1].ID != "ec" || evs[1].Damaged == "" || evs[2].ID != "ed" || evs[2].Damaged != "" {
		t.Fatalf("Events with a damaged event: %+v", evs)
	}
	if _, err := db.Event(ctx, "ec"); !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("Event of a damaged event: %v, want ErrDamaged", err)
	}
	if _, err := db.SetDelivery(ctx, "ec", store.Delivery{State: store.DeliveryDead}); !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("SetDelivery of a damaged event: %v, want ErrDamaged", err)
	}
}

// claims: a claimed event is not claimed again by another owner while
// the lease runs; it is after the lease; a delivery record and Unclaim
// end the claim.
func (s suite) claims(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	completed(t, db, "a", "p", "ea", base)
	completed(t, db, "b", "p", "eb", base.Add(time.Second))
	completed(t, db, "c", "q", "ec", base)
	completed(t, db, "d", "p", "ed", base.Add(time.Hour)) // not due
	lease := time.Minute
	claimIDs := func(owner string, at time.Time, perProfile int) []string {
		t.Helper()
		due, err := db.ClaimDue(ctx, owner, at, lease, perProfile)
		must(t, err)
		var out []string
		for _, d := range due {
			out = append(out, d.EventID)
		}
		sort.Strings(out)
		return out
	}
	now := base.Add(2 * time.Second)
	if got := claimIDs("A", now, 1); fmt.Sprint(got) != "[ea ec]" {
		t.Fatalf("A claims %v, want [ea ec] (one per profile, earliest)", got)
	}
	if got := claimIDs("B", now, 10); fmt.Sprint(got) != "[eb]" {
		t.Fatalf("B claims %v while A's claims run, want [eb]", got)
	}
	if got := claimIDs("A", now.Add(lease/2), 10); len(got) != 0 {
		t.Fatalf("claims again %v while every due event is claimed", got)
	}
	// DueEvents still lists every due event: claims are ClaimDue's.
	if due, _ := db.DueEvents(ctx, now, 10); len(due) != 3 {
		t.Fatalf("DueEvents with claims: %v", due)
	}
	// A records ea (rescheduled, due now): the claim ends with it.
	ev, err := db.Event(ctx, "ea")
	must(t, err)
	dl := ev.Delivery
	dl.Attempts, dl.NextAttemptAt = 1, now
	_, err = db.SetDelivery(ctx, "ea", dl)
	must(t, err)
	if got := claimIDs("B", now, 10); fmt.Sprint(got) != "[ea]" {
		t.Fatalf("B claims %v after A recorded ea, want [ea]", got)
	}
	// Unclaim by someone else does nothing; by the owner it frees at once.
	must(t, db.Unclaim(ctx, "B", []string{"ec"}))
	if got := claimIDs("C", now, 10); len(got) != 0 {
		t.Fatalf("C claims %v after another owner's Unclaim", got)
	}
	must(t, db.Unclaim(ctx, "A", []string{"ec", "nope"}))
	if got := claimIDs("C", now, 10); fmt.Sprint(got) != "[ec]" {
		t.Fatalf("C claims %v after A unclaimed ec, want [ec]", got)
	}
	// After the lease, every claim (B's eb and ea, C's ec) is taken over.
	later := now.Add(lease + time.Second)
	if got := claimIDs("D", later, 10); fmt.Sprint(got) != "[ea eb ec]" {
		t.Fatalf("D claims %v after the leases ran out, want [ea eb ec]", got)
	}
	// A final record leaves the due index: nothing to claim.
	must(t, db.SetDeliveries(ctx, map[string]store.Delivery{
		"ea": {State: store.DeliveryDelivered}, "eb": {State: store.DeliveryDead}, "ec": {State: store.DeliverySkipped}}))
	if got := claimIDs("E", later.Add(2*lease), 10); len(got) != 0 {
		t.Fatalf("claims %v of settled events", got)
	}
}

// claimedEvent: a Due that carries its Event (optional) carries the
// stored one, and it is the caller's copy: changing it changes nothing
// that a later delivery record writes.
func (s suite) claimedEvent(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	completed(t, db, "a", "p", "ea", base)
	due, err := db.ClaimDue(ctx, "A", base.Add(time.Second), time.Minute, 10)
	must(t, err)
	if len(due) != 1 || due[0].EventID != "ea" {
		t.Fatalf("claimed %v, want [ea]", due)
	}
	stored, err := db.Event(ctx, "ea")
	must(t, err)
	if ev := due[0].Event; ev != nil {
		if ev.ID != stored.ID || ev.Type != stored.Type || ev.Intent.ID != stored.Intent.ID || ev.Intent.Key != stored.Intent.Key ||
			ev.Delivery.State != stored.Delivery.State || ev.Delivery.Version != stored.Delivery.Version ||
			!ev.Delivery.NextAttemptAt.Equal(stored.Delivery.NextAttemptAt) {
			t.Fatalf("claimed event %+v, stored %+v", ev, stored)
		}
		ev.Intent.Key, ev.Type = "changed/by/the/caller", "changed"
		ev.Delivery.NextAttemptAt = base.Add(time.Hour)
	}
	dl := stored.Delivery
	dl.State, dl.Attempts, dl.NextAttemptAt = store.DeliveryDelivered, 1, time.Time{}
	must(t, db.SetDeliveries(ctx, map[string]store.Delivery{"ea": dl}))
	got, err := db.Event(ctx, "ea")
	must(t, err)
	if got.Intent.Key != stored.Intent.Key || got.Type != stored.Type || got.Delivery.State != store.DeliveryDelivered ||
		got.Delivery.Version != stored.Delivery.Version+1 {
		t.Fatalf("after the record: %+v (intent key %q), want the stored event delivered at version %d",
			got.Delivery, got.Intent.Key, stored.Delivery.Version+1)
	}
	if due, _ := db.DueEvents(ctx, base.Add(2*time.Hour), 10); len(due) != 0 {
		t.Fatalf("due after delivery: %v", due)
	}
}

// claimsConcurrent: owners claiming at once never get the same event.
func (s suite) claimsConcurrent(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	const events, owners = 60, 6
	for i := range events {
		completed(t, db, fmt.Sprintf("i%02d", i), fmt.Sprintf("p%d", i%3), fmt.Sprintf("e%02d", i), base)
	}
	var mu sync.Mutex
	by := map[string]string{}
	var wg sync.WaitGroup
	var errs []error // under mu
	for o := range owners {
		owner := fmt.Sprintf("owner-%d", o)
		wg.Go(func() {
			for range 10 {
				due, err := db.ClaimDue(ctx, owner, base.Add(time.Second), time.Hour, 2)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				for _, d := range due {
					if prev, ok := by[d.EventID]; ok {
						errs = append(errs, fmt.Errorf("%s claimed by %s and %s", d.EventID, prev, owner))
					}
					by[d.EventID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == 5 {
			t.Errorf("... and %d more", len(errs)-5)
			break
		}
		t.Error(err)
	}
	if len(by) != events {
		t.Fatalf("%d of %d events claimed after %d rounds of %d owners", len(by), events, 10, owners)
	}
}

// leases: one owner holds a lease at a time; it renews it; release or
// expiry hands it over.
func (s suite) leases(t *testing.T) {
	db, ctx := s.db(t), ctxT(t)
	acquire := func(name, owner string, ttl time.Duration) bool {
		t.Helper()
		ok, err := db.AcquireLease(ctx, name, owner, ttl)
		must(t, err)
		return ok
	}
	if !acquire("sweeper", "A", time.Hour) {
		t.Fatal("A did not get a free lease")
	}
	if acquire("sweeper", "B", time.Hour) {
		t.Fatal("B got A's running lease")
	}
	if !acquire("sweeper", "A", time.Hour) {
		t.Fatal("A could not renew its lease")
	}
	if !acquire("other", "B", time.Hour) {
		t.Fatal("B did not get another, free lease")
	}
	must(t, db.ReleaseLease(ctx, "sweeper", "B")) // not B's: nothing
	if acquire("sweeper", "B", time.Hour) {
		t.Fatal("B's release of A's lease freed it")
	}
	must(t, db.ReleaseLease(ctx, "sweeper", "A"))
	if !acquire("sweeper", "B", 300*time.Millisecond) {
		t.Fatal("B did not get the released lease")
	}
	// Expiry: A gets the lease once B's short one ran out, and then
	// holds it against B.
	deadline := time.Now().Add(time.Minute)
	for !acquire("sweeper", "A", time.Hour) {
		if time.Now().After(deadline) {
			t.Fatal("A never got the lease after B's expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if acquire("sweeper", "B", time.Hour) {
		t.Fatal("B got the lease back while A holds it")
	}
}
