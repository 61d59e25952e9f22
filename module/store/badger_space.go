package store

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrFull is returned by writes while the store's filesystem is nearly
// full; nothing was written. The service answers it like any store
// failure (503 store_unavailable).
var ErrFull = errors.New("the store's filesystem is nearly full")

// MinFree is the free space, in bytes, below which the store refuses
// writes. Badger writes through memory-mapped files that are sparse: a
// page written when the filesystem has no block left kills the whole
// process with SIGBUS instead of returning an error (seen in
// module/integration TestDiskFull). Keeping this much free leaves room for
// the pages of the current write-ahead and value logs and a memtable
// flush. A filesystem filled by someone else faster than that between two
// writes can still bring the SIGBUS.
var MinFree uint64 = 64 << 20

// roomToWrite fails with ErrFull while the filesystem of the store has
// less than MinFree bytes free for unprivileged users.
func (b *Badger) roomToWrite() error {
	var st syscall.Statfs_t
	dir := b.db.Opts().Dir
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil // unknown: let Badger try, and report its own error
	}
	if free := st.Bavail * uint64(st.Bsize); free < MinFree {
		return fmt.Errorf("%w: %d bytes free in %s, %d kept free", ErrFull, free, dir, MinFree)
	}
	return nil
}
