package webhook

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store/postgres"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// The package's PostgreSQL cluster, started by the first test that needs
// it and stopped by TestMain.
var pgOnce struct {
	sync.Once
	pg  *testkit.Postgres
	err error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pgOnce.pg != nil {
		pgOnce.pg.Close()
	}
	os.Exit(code)
}

func startPG(t *testing.T) *testkit.Postgres {
	t.Helper()
	pgOnce.Do(func() { pgOnce.pg, pgOnce.err = testkit.StartPostgres() })
	if pgOnce.err != nil {
		t.Fatal(pgOnce.err)
	}
	return pgOnce.pg
}

var pgSchemas atomic.Int64

// openPG opens a PostgreSQL store on schema (a new one if empty).
func openPG(t *testing.T, pg *testkit.Postgres, schema string) *postgres.Store {
	t.Helper()
	if schema == "" {
		schema = fmt.Sprintf("wh%d", pgSchemas.Add(1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := postgres.Open(ctx, postgres.Config{DSN: pg.DSN("webhook_test"), Schema: schema, StatementTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var pgEventSeq atomic.Int64

// completeIn creates and completes an intent of profile in db and returns
// its event's id.
func completeIn(t *testing.T, db store.Store, profile string) string {
	t.Helper()
	n := pgEventSeq.Add(1)
	id := fmt.Sprintf("fleet-intent-%06d", n)
	now := time.Now().UTC()
	in := &store.Intent{ID: id, Profile: profile, Bucket: "b", Key: "k/" + id, ContentType: "image/png", MaxSize: 10,
		Status: store.StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	out, err := db.Update(ctx, id, store.StatusPending, func(x *store.Intent) (store.Event, error) {
		x.Status = store.StatusCompleted
		return store.Event{ID: fmt.Sprintf("evt_fleet_%06d", n), Type: store.EventCompleted, CreatedAt: now}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.EventID
}

// waitDelivered waits until every event is delivered in db.
func waitDelivered(t *testing.T, db store.Store, ids []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, id := range ids {
		for {
			ev, err := db.Event(context.Background(), id)
			if err == nil && ev.Delivery.State == store.DeliveryDelivered {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s not delivered after %v: %+v %v", id, within, ev, err)
			}
			time.Sleep(20 * ms)
		}
	}
}

// TestFleetDispatchersShareTheOutbox: three dispatchers, each with its own
// connection pool, on one PostgreSQL outbox deliver 150 events across 3
// profiles, each exactly once (no failures, so no retries: any second
// request would be two instances sending one event); each keeps its
// webhook-id, the event id.
func TestFleetDispatchersShareTheOutbox(t *testing.T) {
	pg := startPG(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * ms) // attempts overlap the other instances' passes
	})
	schema := fmt.Sprintf("wh%d", pgSchemas.Add(1))
	var dbs []*postgres.Store
	for i := range 3 {
		db := openPG(t, pg, schema)
		dbs = append(dbs, db)
		d := &Dispatcher{Store: db, Poll: 10 * ms, Owner: fmt.Sprintf("instance-%d", i),
			Endpoints: func(string) (*Endpoint, Lookup) { return endpoint(rc.srv.URL), Ready }}
		d.Start()
		t.Cleanup(func() { d.Stop(5 * time.Second) })
	}
	var ids []string
	for i := range 150 {
		ids = append(ids, completeIn(t, dbs[i%3], fmt.Sprintf("p%d", i%3)))
	}
	waitDelivered(t, dbs[0], ids, time.Minute)
	per := map[string]int{}
	for _, d := range rc.deliveries() {
		per[d.ID]++
	}
	for _, id := range ids {
		if per[id] != 1 {
			t.Errorf("%s: %d requests, want exactly 1", id, per[id])
		}
	}
	if len(per) != len(ids) {
		t.Errorf("%d distinct webhook-ids received, want %d", len(per), len(ids))
	}
}

// TestFleetClaimOfCrashedInstanceTakenOver: an event claimed by an
// instance that then died is left alone while the claim's lease runs and
// delivered by another instance after it.
func TestFleetClaimOfCrashedInstanceTakenOver(t *testing.T) {
	pg := startPG(t)
	rc := newReceiver(t, nil)
	db := openPG(t, pg, "")
	id := completeIn(t, db, "p")
	lease := 2 * time.Second
	claimedAt := time.Now()
	due, err := db.ClaimDue(context.Background(), "crashed-instance", claimedAt, lease, 10)
	if err != nil || len(due) != 1 || due[0].EventID != id {
		t.Fatalf("the crashed instance's claim: %v %v", due, err)
	}
	d := &Dispatcher{Store: db, Poll: 20 * ms, Owner: "survivor",
		Endpoints: func(string) (*Endpoint, Lookup) { return endpoint(rc.srv.URL), Ready }}
	d.Start()
	defer d.Stop(5 * time.Second)
	waitDelivered(t, db, []string{id}, time.Minute)
	got := rc.deliveries()
	if len(got) != 1 || got[0].ID != id {
		t.Fatalf("deliveries %+v, want one of %s", got, id)
	}
	if got[0].At.Before(claimedAt.Add(lease)) {
		t.Fatalf("delivered %v after the claim, before its lease of %v ran out", got[0].At.Sub(claimedAt), lease)
	}
}

// countingStore counts ClaimDue calls.
type countingStore struct {
	store.Store
	claims atomic.Int64
}

func (c *countingStore) ClaimDue(ctx context.Context, owner string, t time.Time, lease time.Duration, perProfile int) ([]store.Due, error) {
	c.claims.Add(1)
	return c.Store.ClaimDue(ctx, owner, t, lease, perProfile)
}

// TestDispatcherBacksOffWhileDatabaseDown: with PostgreSQL stopped, the
// dispatcher (polling every 10ms) backs off instead of polling: a bounded
// number of store calls over 4 seconds, and one log line for the outage;
// once PostgreSQL is back, a due event is delivered without restarting
// anything, and the recovery is logged once.
func TestDispatcherBacksOffWhileDatabaseDown(t *testing.T) {
	pg := startPG(t)
	rc := newReceiver(t, nil)
	db := openPG(t, pg, "")
	cs := &countingStore{Store: db}
	core, logs := observer.New(zap.InfoLevel)
	d := &Dispatcher{Store: cs, Poll: 10 * ms, Logger: zap.New(core), Backoff: store.Backoff{Min: 100 * ms, Max: 2 * time.Second},
		Endpoints: func(string) (*Endpoint, Lookup) { return endpoint(rc.srv.URL), Ready }}
	d.Start()
	defer d.Stop(5 * time.Second)
	before := completeIn(t, db, "p")
	waitDelivered(t, db, []string{before}, 30*time.Second)

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			pg.Start()
		}
	}()
	// Wait for the outage to be noticed, then count the calls of a window.
	down := func() int { return logs.FilterMessageSnippet("store unavailable").Len() }
	deadline := time.Now().Add(time.Minute)
	for down() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the dispatcher never noticed the database was down")
		}
		time.Sleep(20 * ms)
	}
	start := cs.claims.Load()
	window := 4 * time.Second
	time.Sleep(window) // the measured window itself, not a wait for state
	calls := cs.claims.Load() - start
	// Polling every 10ms would make ~400 calls; backing off from 100ms to
	// 2s makes at most ~8 (each failed call also waits for its error).
	if calls > 12 {
		t.Fatalf("%d claims in %v with the database down: not backing off", calls, window)
	}
	if n := down(); n != 1 {
		t.Fatalf("outage logged %d times, want once", n)
	}

	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	deadline = time.Now().Add(time.Minute)
	for {
		// The pool may hand out a connection that died with the server
		// first: the write is then refused and made again.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := db.Create(ctx, &store.Intent{ID: "probe", Profile: "p", Status: store.StatusPending, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * ms)
	}
	after := completeIn(t, db, "p")
	d.Kick()
	waitDelivered(t, db, []string{after}, time.Minute)
	if n := logs.FilterMessageSnippet("webhook delivery resumed").Len(); n != 1 {
		t.Fatalf("recovery logged %d times, want once", n)
	}
	if n := logs.FilterMessageSnippet("failed").Len(); n != 0 {
		t.Fatalf("%d error lines besides the outage's: %v", n, logs.FilterMessageSnippet("failed").All())
	}
}

// TestStopReleasesClaimsOfCancelledAttempts: an attempt still in flight
// when Stop's grace ends is cancelled and not recorded; its claim is
// given up, so another instance claims the event at once rather than
// after the lease.
func TestStopReleasesClaimsOfCancelledAttempts(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	db, err := store.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f := &fixture{db: db}
	f.disp = &Dispatcher{Store: db, Owner: "stopping", Lease: time.Hour,
		Endpoints: func(string) (*Endpoint, Lookup) { return endpoint(rc.srv.URL), Ready }}
	f.disp.Start()
	id := f.complete(t, "p")
	<-started
	if due, err := db.ClaimDue(context.Background(), "other", time.Now(), time.Minute, 10); err != nil || len(due) != 0 {
		t.Fatalf("claimed %v while the attempt is in flight: %v", due, err)
	}
	f.disp.Stop(50 * ms)
	due, err := db.ClaimDue(context.Background(), "other", time.Now(), time.Minute, 10)
	if err != nil || len(due) != 1 || due[0].EventID != id {
		t.Fatalf("after Stop cancelled the attempt, another owner claims %v (%v); want %s at once", due, err, id)
	}
}
