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
	}, storetest.Damage(func(t *testing.T, db store.Store, kind, id string) {
		write := store.WriteRawIntent
		if kind == "event" {
			write = store.WriteRawEvent
		}
		if err := write(db.(*store.Badger), id, []byte(`{"id":"`+id+`","created_at":"not a time"}`)); err != nil {
			t.Fatal(err)
		}
	}))
}

func openBench(b *testing.B) store.Store {
	db, err := store.OpenBadger(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func BenchmarkBadgerCreate(b *testing.B) { storetest.BenchmarkCreate(b, openBench(b)) }
func BenchmarkBadgerUpdate(b *testing.B) { storetest.BenchmarkUpdate(b, openBench(b)) }
