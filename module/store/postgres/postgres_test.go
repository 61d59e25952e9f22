package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store/postgres"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store/storetest"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// pg is the package's throw-away PostgreSQL cluster.
var pg *testkit.Postgres

func TestMain(m *testing.M) { os.Exit(testkit.MainWithPostgres(m, &pg)) }

var schemas atomic.Int64

// openFresh opens a store in a schema of its own, its connections named
// by the returned application name.
func openFresh(t *testing.T, cfg postgres.Config) (*postgres.Store, string) {
	t.Helper()
	n := schemas.Add(1)
	app := fmt.Sprintf("storetest_%d", n)
	cfg.DSN = pg.DSN(app)
	if cfg.Schema == "" {
		cfg.Schema = fmt.Sprintf("t%d", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := postgres.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return db, app
}

// TestPostgresConformance runs the Store contract's suite on PostgreSQL,
// cutting the store's connections (pg_terminate_backend) for the
// atomicity test.
func TestPostgresConformance(t *testing.T) {
	var app string
	storetest.Run(t, func(t *testing.T) store.Store {
		var db *postgres.Store
		db, app = openFresh(t, postgres.Config{})
		return db
	}, storetest.Disrupt(func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pg.TerminateBackends(ctx, app); err != nil {
			t.Error(err)
		}
	}), storetest.Damage(func(t *testing.T, _ store.Store, kind, id string) {
		// Valid JSON (the column's type checks that much) that does not
		// decode into the record.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		schema := "t" + strings.TrimPrefix(app, "storetest_")
		table := map[string]string{"intent": "intents", "event": "events"}[kind]
		conn, err := pgx.Connect(ctx, pg.DSN("damage"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		tag, err := conn.Exec(ctx, fmt.Sprintf(`UPDATE %s.direct_upload_%s SET %s = $2::json WHERE id = $1`, schema, table, kind),
			id, `{"id":"`+id+`","created_at":"not a time"}`)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("damaging %s %s: %v %v", kind, id, tag, err)
		}
	}))
}

func pendingIntent(id string) *store.Intent {
	now := time.Now().UTC()
	return &store.Intent{ID: id, Profile: "p", Bucket: "b", Key: "k/" + id, ContentType: "image/png", MaxSize: 10,
		Status: store.StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour), UpdatedAt: now}
}

// TestDatabaseDownIsUnavailable: with PostgreSQL down, Create and Get fail
// soon with ErrUnavailable (which grants answer as 503 store_unavailable);
// once it is back, the same store works again and what it acknowledged
// before is still there.
func TestDatabaseDownIsUnavailable(t *testing.T) {
	db, _ := openFresh(t, postgres.Config{StatementTimeout: 2 * time.Second})
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := db.Create(ctx, pendingIntent("before")); err != nil {
		t.Fatal(err)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			pg.Start()
		}
	}()
	start := time.Now()
	err := db.Create(ctx, pendingIntent("during"))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Create with the database down: %v, want ErrUnavailable", err)
	}
	if _, err := db.Get(ctx, "before"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get with the database down: %v, want ErrUnavailable", err)
	}
	if _, err := db.Update(ctx, "before", store.StatusPending, func(in *store.Intent) (store.Event, error) {
		in.Status = store.StatusFailed
		return store.Event{ID: "e", Type: store.EventFailed, CreatedAt: time.Now()}, nil
	}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Update with the database down: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the failures took %v", d)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	if err := db.Create(ctx, pendingIntent("after")); err != nil {
		t.Fatalf("Create after the database returned: %v", err)
	}
	for _, id := range []string{"before", "after"} {
		if in, err := db.Get(ctx, id); err != nil || in.Status != store.StatusPending {
			t.Fatalf("%s: %v %v", id, in, err)
		}
	}
	if _, err := db.Get(ctx, "during"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused create was stored: %v", err)
	}
}

// TestStatementTimeoutBoundsLockWaits: a row held locked by another
// session makes an Update wait no longer than the statement timeout, and
// the answer is ErrUnavailable with nothing written.
func TestStatementTimeoutBoundsLockWaits(t *testing.T) {
	db, _ := openFresh(t, postgres.Config{StatementTimeout: 300 * time.Millisecond, Schema: "locks"})
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.Create(ctx, pendingIntent("a")); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pg.DSN("locker"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM locks.direct_upload_intents WHERE id = 'a' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = db.Update(ctx, "a", store.StatusPending, func(in *store.Intent) (store.Event, error) {
		in.Status = store.StatusFailed
		return store.Event{ID: "e", Type: store.EventFailed, CreatedAt: time.Now()}, nil
	})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Update of a locked row: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Update waited %v with a 300ms statement timeout", d)
	}
	tx.Rollback(ctx)
	if in, err := db.Get(ctx, "a"); err != nil || in.Status != store.StatusPending {
		t.Fatalf("after the timeout: %+v %v", in, err)
	}
}

// TestMigrationsRunOnceForInstancesStartingTogether: stores opening
// together on a new schema apply each migration once; a schema newer than
// the build is refused.
func TestMigrationsRunOnceForInstancesStartingTogether(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 6
	errs := make(chan error, n)
	stores := make(chan *postgres.Store, n)
	for i := range n {
		go func() {
			db, err := postgres.Open(ctx, postgres.Config{DSN: pg.DSN(fmt.Sprintf("migrate_%d", i)), Schema: "together", TablePrefix: "app_"})
			errs <- err
			if err == nil {
				stores <- db
			}
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		db := <-stores
		defer db.Close()
	}
	conn, err := pgx.Connect(ctx, pg.DSN("check"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, versions int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM together.app_schema_migrations`).Scan(&rows, &versions); err != nil {
		t.Fatal(err)
	}
	if rows != versions || versions != postgres.SchemaVersion {
		t.Fatalf("schema_migrations: %d rows, %d versions; want %d once each", rows, versions, postgres.SchemaVersion)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO together.app_schema_migrations (version, name) VALUES (9999, 'from the future')`); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Open(ctx, postgres.Config{DSN: pg.DSN("old_build"), Schema: "together", TablePrefix: "app_"})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("opening a newer schema: %v, want a refusal", err)
	}
}

// TestTablePrefixesSeparateStores: two stores in one schema with their
// own prefixes see only their own intents.
func TestTablePrefixesSeparateStores(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, _ := openFresh(t, postgres.Config{Schema: "shared", TablePrefix: "a_"})
	defer a.Close()
	b, _ := openFresh(t, postgres.Config{Schema: "shared", TablePrefix: "b_"})
	defer b.Close()
	if err := a.Create(ctx, pendingIntent("x")); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, pendingIntent("x")); err != nil {
		t.Fatalf("the same id in another prefix: %v", err)
	}
	if _, err := b.Get(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := a.Create(ctx, pendingIntent("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "y"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b sees a's intent: %v", err)
	}
}

func TestConfigRefusesBadNames(t *testing.T) {
	for _, cfg := range []postgres.Config{
		{DSN: ""},
		{DSN: pg.DSN(""), Schema: `x"; DROP TABLE y; --`},
		{DSN: pg.DSN(""), TablePrefix: "Upper"},
		{DSN: "postgres://u:secret@[::1", Schema: "ok"},
	} {
		_, err := postgres.Open(context.Background(), cfg)
		if err == nil {
			t.Errorf("%+v accepted", cfg)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

func openBench(b *testing.B) store.Store {
	n := schemas.Add(1)
	db, err := postgres.Open(context.Background(), postgres.Config{DSN: pg.DSN("bench"), Schema: fmt.Sprintf("bench%d", n)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func BenchmarkPostgresCreate(b *testing.B) { storetest.BenchmarkCreate(b, openBench(b)) }
func BenchmarkPostgresUpdate(b *testing.B) { storetest.BenchmarkUpdate(b, openBench(b)) }

// TestDueEventsCostIgnoresBacklog: with 50,000 pending events due in one
// profile and one in each of 5 others, DueEvents reads a few pages per
// profile (a skip scan over profiles, then each profile's earliest), not
// the backlog: the plan's buffer count stays far below the ~250 pages of
// the backlog's index entries. Counted by EXPLAIN (ANALYZE, BUFFERS), not
// timed.
func TestDueEventsCostIgnoresBacklog(t *testing.T) {
	db, _ := openFresh(t, postgres.Config{Schema: "backlog"})
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.DSN("backlog"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO backlog.direct_upload_events (id, intent_id, profile, type, created_ns, state, due_ns, event)
		SELECT 'e' || lpad(g::text, 8, '0'), 'i' || g, CASE WHEN g <= 50000 THEN 'big' ELSE 'p' || g END,
			'upload.completed', g, 'pending', g, '{}'::json
		FROM generate_series(1, 50005) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE backlog.direct_upload_events`); err != nil {
		t.Fatal(err)
	}
	due, err := db.DueEvents(ctx, time.Unix(0, 1<<62), 16)
	if err != nil || len(due) != 16+5 {
		t.Fatalf("DueEvents: %d events, %v; want 21", len(due), err)
	}
	var plan []struct {
		Plan struct {
			SharedHit  int `json:"Shared Hit Blocks"`
			SharedRead int `json:"Shared Read Blocks"`
		} `json:"Plan"`
	}
	var raw []byte
	if err := conn.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+postgres.DueEventsSQL("backlog", postgres.DefaultTablePrefix),
		int64(1<<62), 16).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &plan); err != nil || len(plan) != 1 {
		t.Fatalf("plan %s: %v", raw, err)
	}
	if blocks := plan[0].Plan.SharedHit + plan[0].Plan.SharedRead; blocks > 100 {
		t.Fatalf("DueEvents read %d pages with a backlog of 50,000 in one profile; want a few per profile\n%s", blocks, raw)
	} else {
		t.Logf("DueEvents read %d pages", blocks)
	}
}
