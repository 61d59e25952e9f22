package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenAfterKillDuringOpen: Badger creates a new value-log file on
// every open (O_CREATE, then sizes it); a kill -9 between the two leaves
// an empty .vlog (or .mem) that made the next open fail ("Open existing file ...
// Create a new file"), so the sidecar could not start again. Found by the
// crash loop (module/integration TestCrashLoop). The empty file holds no
// data; the store opens and keeps what it had.
func TestOpenAfterKillDuringOpen(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	ctx := context.Background()
	if err := db.Create(ctx, pending("k1", time.Unix(1000, 0).UTC())); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The files the next open would create (a value log and a memtable's
	// write-ahead log), left empty by the kill.
	entries, _ := os.ReadDir(dir)
	maxV, maxM := 0, 0
	for _, e := range entries {
		var n int
		if name, ok := strings.CutSuffix(e.Name(), ".vlog"); ok {
			if _, err := fmt.Sscan(name, &n); err == nil && n > maxV {
				maxV = n
			}
		}
		if name, ok := strings.CutSuffix(e.Name(), ".mem"); ok {
			if _, err := fmt.Sscan(name, &n); err == nil && n > maxM {
				maxM = n
			}
		}
	}
	for _, name := range []string{fmt.Sprintf("%06d.vlog", maxV+1), fmt.Sprintf("%05d.mem", maxM+1)} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db, err := OpenBadger(dir, nil)
	if err != nil {
		t.Fatalf("open after a kill during open: %v", err)
	}
	defer db.Close()
	if got, err := db.Get(ctx, "k1"); err != nil || got.Status != StatusPending {
		t.Fatalf("intent after reopen: %+v %v", got, err)
	}
}
