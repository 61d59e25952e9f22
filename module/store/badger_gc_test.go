package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// diskUse is the blocks really used under dir (Badger's files are sparse).
func diskUse(t testing.TB, dir string) int64 {
	var total int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted by Badger meanwhile
		}
		if err == nil && !info.IsDir() {
			total += info.Sys().(*syscall.Stat_t).Blocks * 512
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// settleAll creates n intents with metadata of metaSize bytes, completes
// them, marks them settled and their events delivered, concurrently.
func settleAll(t testing.TB, db *Badger, n, metaSize int) {
	ctx := context.Background()
	meta := []byte(`{"note":"` + strings.Repeat("x", metaSize) + `"}`)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				id := fmt.Sprintf("in%07d", i)
				in := pending(id, time.Now().Add(time.Hour))
				in.Metadata = meta
				err := db.Create(ctx, in)
				if err == nil {
					_, err = db.Update(ctx, id, StatusPending, complete("ev"+id))
				}
				if err == nil {
					_, err = db.Annotate(ctx, id, StatusCompleted, func(x *Intent) { x.Settled = true })
				}
				if err == nil {
					_, err = db.SetDelivery(ctx, "ev"+id, Delivery{State: DeliveryDelivered, Attempts: 1})
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// TestValueLogGCShrinksDisk: intents too large for the LSM tree go to the
// value log; once they are pruned, the store's periodic collection
// rewrites the value-log files they filled and those shrink (before it,
// nothing ever reclaimed them). Compactions tell the collection which
// files are garbage; later traffic brings them. Only the value-log files
// are measured: the later traffic's own tables grow the rest of the store
// (judged on the whole disk, the test failed on a busy machine with 166 MB
// of small intents written while the value log had long shrunk).
func TestValueLogGCShrinksDisk(t *testing.T) {
	oldSize, oldInterval := valueLogFileSize, gcInterval
	valueLogFileSize, gcInterval = 1<<20, 50*time.Millisecond
	defer func() { valueLogFileSize, gcInterval = oldSize, oldInterval }()
	dir := t.TempDir()
	db, err := OpenBadgerUnsynced(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 1000
	settleAll(t, db, n, 4096)
	full := valueLogUse(t, dir)
	ctx := context.Background()
	for i := 0; i < n; i++ {
		if err := db.Prune(ctx, fmt.Sprintf("in%07d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Small intents written later, in the LSM tree only (they add nothing
	// to the value log): their flushes and compactions drop the pruned
	// records and tell the collection which files are garbage.
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; valueLogUse(t, dir) > full/3; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("value log %d bytes after pruning everything (%d before) and writing %d small intents: it was not collected", valueLogUse(t, dir), full, i*500)
		}
		for j := 0; j < 500; j++ {
			if err := db.Create(ctx, pending(fmt.Sprintf("small%07d", i*500+j), time.Now().Add(time.Hour))); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("value log %d bytes with %d large settled intents, %d once pruned and collected", full, n, valueLogUse(t, dir))
}

// valueLogUse is the blocks used by dir's value-log files.
func valueLogUse(t testing.TB, dir string) int64 {
	matches, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, m := range matches {
		if info, err := os.Stat(m); err == nil {
			total += info.Sys().(*syscall.Stat_t).Blocks * 512
		}
	}
	return total
}
