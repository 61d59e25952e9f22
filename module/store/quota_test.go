package store_test

import (
	"testing"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store/storetest"
)

// TestBadgerQuota runs the quota cases on Badger; reopening closes the
// database and opens its directory again.
func TestBadgerQuota(t *testing.T) {
	dirs := map[store.Store]string{}
	storetest.RunQuota(t, func(t *testing.T) store.Store {
		dir := t.TempDir()
		db, err := store.OpenBadger(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		dirs[db] = dir
		return db
	}, func(t *testing.T, db store.Store) store.Store {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		re, err := store.OpenBadger(dirs[db], nil)
		if err != nil {
			t.Fatal(err)
		}
		return re
	})
}
