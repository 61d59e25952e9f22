package store

import (
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"go.uber.org/zap"
)

// boundMemory sets the options that bound what Badger holds in the
// process's memory beyond the caches set in openBadger (see
// docs/performance.md, Memory).
func boundMemory(opts badger.Options) badger.Options {
	// The same table size at every level: see WithBaseTableSize below
	// (Badger has no With method for the multiplier).
	opts.TableSizeMultiplier = 1
	return opts.
		// Two compactors, Badger's minimum (one for level 0, one for the
		// rest), instead of four: each builds its tables in buffers on the
		// Go heap (a table and its compressed blocks), so fewer at once
		// lower the heap's peak during a burst of writes.
		WithNumCompactors(2).
		// ZSTD (level 1) instead of Snappy. A table builder holds, until
		// the table is written, every block of it uncompressed plus room
		// for its compressed copy (Snappy's bound is 1.17x the block,
		// ZSTD's 1.01x), in buffers that double: the tighter bound keeps
		// more builders within their first buffer. Sweeping 30k expired
		// intents: peak live heap 77 instead of 124-130 MiB, peak heap in
		// use 146-152 instead of 221-254 MiB, 7% fewer bytes allocated per
		// intent, and 28% less disk in tables (docs/performance.md,
		// Sweeping). Tables keep the compression they were written with,
		// so a store written with Snappy still opens.
		WithCompression(options.ZSTD).
		// Tables of 1 MiB (compressed) at every level instead of 2 MiB
		// doubling per level below the base one (4, 8 MiB...). A
		// compaction's builders hold their whole table uncompressed (about
		// five times its size with ZSTD) plus its compressed blocks, up
		// to 8 + splits builders per compaction, and Badger's allocator
		// pool keeps up to 8 of their buffers for reuse: the table size
		// bounds each. Sweeping 100k expired intents: peak live heap 128
		// instead of 266 MiB (ZSTD alone). Smaller (512 KiB) was worse:
		// level 0's tables still hold a whole memtable, and their builders
		// then grow through more doublings.
		WithBaseTableSize(1 << 20)
}

// Releasing memory after a burst of writes. A burst of grants grows the Go
// heap to about twice its peak live size (Go's default GOGC=100), and
// nothing brings it back while the process is idle: without allocations
// no collection runs (Go forces one every two minutes) and the runtime
// returns free pages to the OS only slowly. So once the store's writes
// stop, the store asks the runtime to collect and return what it holds
// beyond its live heap, once per burst and again if its compactions
// leave much more, and only when that is much.
var (
	// releaseTick is how often the releaser looks; releaseIdle how many
	// ticks without a write end a burst.
	releaseTick = time.Second
	releaseIdle = 2
	// releaseMinWrites is the commits a burst needs, and releaseMinHeld
	// the memory the Go runtime must hold before a release pays for its
	// collection. (The live heap the runtime reports is the last
	// collection's, taken during the burst: no guide to what a collection
	// now would free.)
	releaseMinWrites uint64 = 1000
	releaseMinHeld   uint64 = 48 << 20
	// releaseRegrown is how much more than right after the last release
	// the runtime must hold for another release without new writes.
	releaseRegrown uint64 = 16 << 20
	// releaseQuietAllocs is the most the process may allocate in a tick
	// and still count as idle.
	releaseQuietAllocs uint64 = 4 << 20
)

// releaser runs until Close; see releaseTick.
func (b *Badger) releaser() {
	defer b.bg.Done()
	t := time.NewTicker(releaseTick)
	defer t.Stop()
	last := b.writes.Load()
	// releasedTo is what the runtime held right after the last release.
	var written, lastAllocs uint64
	releasedTo, _, _ := goMemory()
	idle := 0
	for {
		select {
		case <-b.bgStop:
			return
		case <-t.C:
		}
		// Idle: no commit, and the process (Badger's compactions after
		// the burst included) allocating little.
		v := b.writes.Load()
		held, live, allocs := goMemory()
		quiet := allocs-lastAllocs < releaseQuietAllocs
		lastAllocs = allocs
		if v != last || !quiet {
			written += v - last
			last, idle = v, 0
			continue
		}
		if idle++; idle < releaseIdle || held <= releaseMinHeld {
			continue
		}
		// A burst of writes ended, or the store's compactions after it
		// (which go on once the writes stopped) left much more held than
		// the last release did.
		if written >= releaseMinWrites || held > releasedTo+releaseRegrown {
			debug.FreeOSMemory()
			written, idle = 0, 0
			releasedTo, _, _ = goMemory()
			b.logger().Debug("returned memory to the OS after a burst of writes",
				zap.Uint64("held_before", held), zap.Uint64("held_after", releasedTo), zap.Uint64("live_heap", live))
		}
	}
}

// goMemory is the memory the Go runtime holds from the OS (everything it
// mapped minus what it released), the live heap after the last GC, and
// the bytes allocated on the heap so far.
func goMemory() (held, live, allocs uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"},
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	for _, x := range s {
		if x.Value.Kind() != metrics.KindUint64 {
			return 0, 0, 0
		}
	}
	return s[0].Value.Uint64() - s[1].Value.Uint64(), s[2].Value.Uint64(), s[3].Value.Uint64()
}

// startBackground starts the store's background loops; Close stops them.
func (b *Badger) startBackground() {
	b.bgStop = make(chan struct{})
	b.bg.Add(2)
	go b.releaser()
	go b.valueLogGC()
}
