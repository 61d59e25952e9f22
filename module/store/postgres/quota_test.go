package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store/postgres"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store/storetest"
)

// TestPostgresQuota runs the quota cases on PostgreSQL; reopening closes
// the store and opens a new one on the same schema.
func TestPostgresQuota(t *testing.T) {
	cfgs := map[store.Store]postgres.Config{}
	storetest.RunQuota(t, func(t *testing.T) store.Store {
		n := schemas.Add(1)
		cfg := postgres.Config{Schema: fmt.Sprintf("q%d", n)}
		db, _ := openFresh(t, cfg)
		cfg.DSN = pg.DSN("quota")
		cfgs[db] = cfg
		return db
	}, func(t *testing.T, db store.Store) store.Store {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		re, err := postgres.Open(ctx, cfgs[db])
		if err != nil {
			t.Fatal(err)
		}
		return re
	})
}
