package store_test

import (
	"testing"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store/storetest"
)

// TestBadgerConformance runs the Store contract's suite on Badger.
func TestBadgerConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db, err := store.OpenBadger(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}
