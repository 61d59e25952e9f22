package store

import (
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Value-log garbage collection. Intents and events are small and stay in
// the LSM tree (see openBadger's value threshold), but a record over the
// threshold (an intent with large metadata, or its event carrying the
// intent's snapshot) goes to the value log, and Badger never reclaims a
// value-log file by itself: a deleted or rewritten record's old value stays
// on disk until RunValueLogGC rewrites the file it is in. The store runs it
// periodically, bounded, and stops it on Close.
var (
	// valueLogFileSize is the size of a value-log file, the unit the
	// collection rewrites and deletes.
	valueLogFileSize int64 = 64 << 20
	// gcInterval is how often the store collects the value log.
	gcInterval = 10 * time.Minute
	// gcDiscardRatio: a file is rewritten when at least this part of it
	// is garbage.
	gcDiscardRatio = 0.5
	// gcMaxRewrites bounds the files rewritten in one round.
	gcMaxRewrites = 16
)

// valueLogGC runs CollectGarbage every gcInterval until Close.
func (b *Badger) valueLogGC() {
	defer b.bg.Done()
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		select {
		case <-b.bgStop:
			return
		case <-t.C:
		}
		if n, err := b.collectGarbage(); err != nil {
			b.logger().Warn("value-log garbage collection failed", zap.Int("files_rewritten", n), zap.Error(err))
		} else if n > 0 {
			b.logger().Info("value-log garbage collected", zap.Int("files_rewritten", n))
		}
	}
}

// CollectGarbage rewrites value-log files at least half garbage, up to
// gcMaxRewrites of them, and returns how many it rewrote. The store does
// this by itself every gcInterval; tools and tests may call it.
func (b *Badger) CollectGarbage() (int, error) {
	if b.isClosed() {
		return 0, ErrClosed
	}
	return b.collectGarbage()
}

func (b *Badger) collectGarbage() (int, error) {
	for n := 0; n < gcMaxRewrites; n++ {
		select {
		case <-b.bgStop:
			return n, nil
		default:
		}
		err := b.runValueLogGC()
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return gcMaxRewrites, nil
}

// runValueLogGC is one RunValueLogGC, apart from writes in race builds
// (gcGate, in badger.go).
func (b *Badger) runValueLogGC() error {
	if raceEnabled {
		b.gcGate.Lock()
		defer b.gcGate.Unlock()
	}
	return b.db.RunValueLogGC(gcDiscardRatio)
}
