package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWritesRefusedWhenNearlyFull: below MinFree free bytes, creates and
// updates fail with ErrFull and write nothing; with room again they work.
func TestWritesRefusedWhenNearlyFull(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	ctx := context.Background()
	exp := time.Unix(1000, 0).UTC()
	if err := db.Create(ctx, pending("a", exp)); err != nil {
		t.Fatal(err)
	}
	old := MinFree
	MinFree = 1 << 62
	if err := db.Create(ctx, pending("b", exp)); !errors.Is(err, ErrFull) {
		t.Fatalf("create while full: %v, want ErrFull", err)
	}
	if _, err := db.Update(ctx, "a", StatusPending, complete("e1")); !errors.Is(err, ErrFull) {
		t.Fatalf("update while full: %v, want ErrFull", err)
	}
	MinFree = old
	if _, err := db.Get(ctx, "b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused create left a record: %v", err)
	}
	if in, err := db.Get(ctx, "a"); err != nil || in.Status != StatusPending {
		t.Fatalf("refused update changed the intent: %+v %v", in, err)
	}
	if err := db.Create(ctx, pending("b", exp)); err != nil {
		t.Fatalf("create with room again: %v", err)
	}
	if _, err := db.Update(ctx, "a", StatusPending, complete("e1")); err != nil {
		t.Fatalf("update with room again: %v", err)
	}
}
