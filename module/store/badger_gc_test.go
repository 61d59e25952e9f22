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
func diskUse(t testing.TB, dir string) int64 { return filesUse(t, dir, "") }

// filesUse is diskUse of the files whose name ends with suffix.
func filesUse(t testing.TB, dir, suffix string) int64 {
	var total int64
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted by Badger meanwhile
		}
		if err == nil && !info.IsDir() && strings.HasSuffix(path, suffix) {
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
// rewrites the value-log files they filled and the disk shrinks (before
// it, nothing ever reclaimed them). Compactions, driven by later writes,
// tell the collection which files are garbage.
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
	// The value-log files only: the LSM tree's own floor (memtable files
	// and tables of the small intents written below) is not what the
	// collection reclaims.
	full := filesUse(t, dir, ".vlog")
	ctx := context.Background()
	for i := 0; i < n; i++ {
		if err := db.Prune(ctx, fmt.Sprintf("in%07d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Small intents written later, in the LSM tree only: their flushes
	// and compactions drop the pruned records.
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; filesUse(t, dir, ".vlog") > full/3; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("value log %d bytes after pruning everything (%d before) and writing %d small intents: it was not collected", filesUse(t, dir, ".vlog"), full, i*500)
		}
		for j := 0; j < 500; j++ {
			if err := db.Create(ctx, pending(fmt.Sprintf("small%07d", i*500+j), time.Now().Add(time.Hour))); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("value log %d bytes with %d large settled intents, %d once pruned and collected (disk %d)", full, n, filesUse(t, dir, ".vlog"), diskUse(t, dir))
}
