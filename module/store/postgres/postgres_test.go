package postgres_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store/postgres"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store/storetest"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// pg is the package's throw-away PostgreSQL cluster.
var pg *testkit.Postgres

func TestMain(m *testing.M) {
	var err error
	pg, err = testkit.StartPostgres()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting postgres:", err)
		os.Exit(1)
	}
	code := m.Run()
	pg.Close()
	os.Exit(code)
}

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
	}))
}
