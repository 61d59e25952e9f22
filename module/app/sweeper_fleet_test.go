package app

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store/postgres"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

// countingStore counts the sweeper's calls to the store.
type countingStore struct {
	store.Store
	lists, leases atomic.Int64
}

func (c *countingStore) List(ctx context.Context, idx store.Index, t time.Time, after store.Cursor, limit int) ([]*store.Intent, store.Cursor, error) {
	c.lists.Add(1)
	return c.Store.List(ctx, idx, t, after, limit)
}

func (c *countingStore) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	c.leases.Add(1)
	return c.Store.AcquireLease(ctx, name, owner, ttl)
}

var sweeperSchemas atomic.Int64

// fleetSweeper is a sweeper of instance owner on its own connection pool
// to the PostgreSQL schema, with a config of no profiles, logging to an
// observer. It is not started: tests call pass, or start its loop.
func fleetSweeper(t *testing.T, schema, owner string, interval time.Duration) (*sweeper, *countingStore, *observer.ObservedLogs) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := postgres.Open(ctx, postgres.Config{DSN: pg.DSN("sweeper_" + owner), Schema: schema, StatementTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cs := &countingStore{Store: db}
	c := &core{db: cs, owner: owner}
	a := &App{SweepInterval: caddy.Duration(interval), Retention: caddy.Duration(time.Hour), profiles: map[string]*upload.Profile{}}
	a.service.Store(upload.NewService(cs, zap.NewNop()))
	a.core = c
	c.apps = []*App{a}
	core, logs := observer.New(zap.InfoLevel)
	sw := &sweeper{c: c, owner: owner, workers: 2, wake: make(chan struct{}, 1), done: make(chan struct{})}
	sw.setLogger(zap.New(core))
	sw.ctx, sw.cancel = context.WithCancel(context.Background())
	t.Cleanup(sw.cancel)
	return sw, cs, logs
}

// TestSweeperLeaseOneInstanceSweeps: of two instances on one PostgreSQL
// store, only the lease holder sweeps (lists intents); each logs what it
// holds once per change; when the holder stops, it releases the lease and
// the other takes over at its next pass.
func TestSweeperLeaseOneInstanceSweeps(t *testing.T) {
	schema := fmt.Sprintf("sweep%d", sweeperSchemas.Add(1))
	a, ca, la := fleetSweeper(t, schema, "A", time.Hour)
	b, cb, lb := fleetSweeper(t, schema, "B", time.Hour)
	for range 3 {
		if _, err := a.pass(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.pass(); err != nil {
			t.Fatal(err)
		}
	}
	if ca.lists.Load() == 0 || cb.lists.Load() != 0 {
		t.Fatalf("listings: A %d, B %d; want only A (the lease holder) to sweep", ca.lists.Load(), cb.lists.Load())
	}
	if n := la.FilterMessageSnippet("lease acquired").Len(); n != 1 {
		t.Fatalf("A logged the lease acquired %d times, want once", n)
	}
	if n := lb.FilterMessageSnippet("lease held by another instance").Len(); n != 1 {
		t.Fatalf("B logged the other holder %d times, want once", n)
	}
	a.releaseLease() // what A's loop does when it stops
	if _, err := b.pass(); err != nil {
		t.Fatal(err)
	}
	if cb.lists.Load() == 0 {
		t.Fatal("B did not sweep after A released the lease")
	}
	if n := lb.FilterMessageSnippet("lease acquired").Len(); n != 1 {
		t.Fatalf("B logged the lease acquired %d times, want once", n)
	}
	before := ca.lists.Load()
	if _, err := a.pass(); err != nil {
		t.Fatal(err)
	}
	if ca.lists.Load() != before {
		t.Fatal("A swept while B holds the lease")
	}
}

// TestSweeperBacksOffWhileDatabaseDown: with PostgreSQL stopped, a sweeper
// whose interval is 10ms backs off (a bounded number of lease calls over
// 4s) and logs the outage once; after PostgreSQL returns it sweeps again
// by itself and logs the recovery once.
func TestSweeperBacksOffWhileDatabaseDown(t *testing.T) {
	schema := fmt.Sprintf("sweep%d", sweeperSchemas.Add(1))
	sw, cs, logs := fleetSweeper(t, schema, "A", 10*time.Millisecond)
	sw.backoff = store.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	go sw.loop()
	defer func() { sw.cancel(); <-sw.done }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: timed out", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("a first sweep", func() bool { return cs.lists.Load() > 0 })
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			pg.Start()
		}
	}()
	down := func() int { return logs.FilterMessageSnippet("store unavailable").Len() }
	waitFor("the outage to be noticed", func() bool { return down() > 0 })
	start := cs.leases.Load()
	window := 4 * time.Second
	time.Sleep(window) // the measured window itself, not a wait for state
	if calls := cs.leases.Load() - start; calls > 12 {
		t.Fatalf("%d lease calls in %v with the database down (interval 10ms): not backing off", calls, window)
	}
	if n := down(); n != 1 {
		t.Fatalf("outage logged %d times, want once", n)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	lists := cs.lists.Load()
	waitFor("sweeping to resume", func() bool { return cs.lists.Load() > lists })
	waitFor("the recovery to be logged", func() bool { return logs.FilterMessageSnippet("sweeping resumed").Len() > 0 })
	if n := logs.FilterMessageSnippet("sweeping resumed").Len(); n != 1 {
		t.Fatalf("recovery logged %d times, want once", n)
	}
	if n := logs.FilterMessageSnippet("failed").Len(); n != 0 {
		t.Fatalf("%d error lines besides the outage's: %v", n, logs.FilterMessageSnippet("failed").All())
	}
}

// TestClaimLease: claim_lease is read from the Caddyfile, defaults to a
// minute, and is raised to cover the longest webhook timeout of the
// config plus the margin kept to record an attempt.
func TestClaimLease(t *testing.T) {
	got, err := adaptApp(t, "claim_lease 5s")
	if err != nil || fmt.Sprint(got["claim_lease"]) != "5e+09" {
		t.Fatalf("adapted: %v %v", got, err)
	}
	a := &App{}
	if l := a.claimLease(); l != webhook.DefaultLease {
		t.Fatalf("default lease %v", l)
	}
	a.ClaimLease = caddy.Duration(5 * time.Second)
	if l := a.claimLease(); l != 5*time.Second {
		t.Fatalf("lease %v, want 5s", l)
	}
	a.webhooks = map[string]*webhook.Endpoint{"p": {Timeout: 2 * time.Minute}, "q": nil}
	if l := a.claimLease(); l != 2*time.Minute+2*webhook.LeaseMargin {
		t.Fatalf("lease %v with a 2m webhook timeout", l)
	}
	bad := `{"admin":{"disabled":true},"apps":{"direct_upload":{"claim_lease":"10ms"}}}`
	if err := caddy.Load([]byte(bad), true); err == nil || !strings.Contains(err.Error(), "claim_lease") {
		caddy.Stop()
		t.Fatalf("a claim lease of 10ms: %v, want a refusal", err)
	}
}
