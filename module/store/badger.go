package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
)

// Key layout. Intents live under "i/", the expiry index of pending intents
// under "x/" (big-endian expiry then id, so a prefix scan walks expiries in
// order), and the outbox under "o/" by event id (time-ordered ids keep the
// outbox in write order). Events pending delivery have two index entries:
// under "q/" by profile (length-prefixed) then due time then id, so each
// profile's due events are read apart from the others', and under "c/" by
// creation time then id, so the oldest is one seek away. "d/" is the due
// index of earlier versions (by due time only), moved to "q/" and "c/"
// when a store is opened. Badger's own TTL is never used: it would hide
// expired intents from the sweeper that has to find them.
var (
	intentPrefix   = []byte("i/")
	expiryPrefix   = []byte("x/")
	recheckPrefix  = []byte("r/")
	finishedPrefix = []byte("f/")
	statusPrefix   = []byte("s/")
	outboxPrefix   = []byte("o/")
	duePrefix      = []byte("q/")
	createdPrefix  = []byte("c/")
	oldDuePrefix   = []byte("d/")
)

var indexPrefix = map[Index][]byte{ByExpiry: expiryPrefix, ByRecheck: recheckPrefix, ByFinished: finishedPrefix}

// indexKeys are the index entries an intent has in its current state:
// one by status (and profile), and one time index by where it is in its
// life. Every write of an intent replaces the old entries with these.
func indexKeys(in *Intent) [][]byte {
	_, keys := appendIndexKeys(make([]byte, 0, indexKeysSize(in)), in)
	return keys[:]
}

// indexKeysSize is the room both index keys of in take.
func indexKeysSize(in *Intent) int {
	return len(statusPrefix) + len(in.Status) + len(in.Profile) + len(in.ID) + 2 + len(expiryPrefix) + 8 + len(in.ID)
}

// appendIndexKeys appends in's index keys to buf and returns buf with
// them, and the two keys (each capped, so neither can grow into what
// follows). With indexKeysSize(in) bytes of room in buf it allocates
// nothing.
func appendIndexKeys(buf []byte, in *Intent) ([]byte, [2][]byte) {
	// The time key is prefix, time, id like timeKey's.
	start := len(buf)
	n := len(statusPrefix) + len(in.Status) + len(in.Profile) + len(in.ID) + 2
	buf = append(append(append(append(buf, statusPrefix...), in.Status...), '/'), in.Profile...)
	buf = append(append(buf, '/'), in.ID...)
	prefix, t := finishedPrefix, in.UpdatedAt
	switch {
	case in.Status == StatusPending:
		prefix, t = expiryPrefix, in.ExpiresAt
	case !in.Settled:
		prefix, t = recheckPrefix, in.ExpiresAt
	}
	buf = binary.BigEndian.AppendUint64(append(buf, prefix...), uint64(t.UnixNano()))
	buf = append(buf, in.ID...)
	return buf, [2][]byte{buf[start : start+n : start+n], buf[start+n : len(buf) : len(buf)]}
}

// putIntent writes in, replacing the index entries of old (nil if new).
func putIntent(txn *badger.Txn, old, in *Intent) error {
	val, err := marshalIntent(in)
	if err != nil {
		return fmt.Errorf("encoding intent: %w", err)
	}
	if err := txn.Set(intentKey(in.ID), val); err != nil {
		return err
	}
	keys := indexKeys(in)
	for _, k := range keys {
		if err := txn.Set(k, nil); err != nil {
			return err
		}
	}
	if old != nil {
	stale:
		for _, k := range indexKeys(old) {
			for _, kk := range keys {
				if bytes.Equal(k, kk) {
					continue stale
				}
			}
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

func intentKey(id string) []byte { return prefixed(intentPrefix, id) }

func outboxKey(id string) []byte { return prefixed(outboxPrefix, id) }

// prefixed is prefix+id in one allocation.
func prefixed(prefix []byte, id string) []byte {
	return append(append(make([]byte, 0, len(prefix)+len(id)), prefix...), id...)
}

// timeKey is prefix, then t as big-endian nanoseconds, then id: a prefix
// scan walks such keys in time order.
func timeKey(prefix []byte, t time.Time, id string) []byte {
	k := make([]byte, 0, len(prefix)+8+len(id))
	k = append(k, prefix...)
	k = binary.BigEndian.AppendUint64(k, uint64(t.UnixNano()))
	return append(k, id...)
}

// dueProfilePrefix is the part of the due index holding one profile's
// events: its name, length-prefixed so no profile's prefix is another's.
func dueProfilePrefix(profile string) []byte {
	k := make([]byte, 0, len(duePrefix)+2+len(profile))
	k = append(k, duePrefix...)
	k = binary.BigEndian.AppendUint16(k, uint16(len(profile)))
	return append(k, profile...)
}

func dueKey(profile string, t time.Time, id string) []byte {
	return timeKey(dueProfilePrefix(profile), t, id)
}

func createdKey(t time.Time, id string) []byte { return timeKey(createdPrefix, t, id) }

// prefixEnd is the first key after every key starting with p (nil: none).
func prefixEnd(p []byte) []byte {
	end := append([]byte{}, p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Badger is the Store kept in an embedded Badger database on local disk.
// One process may open a directory at a time.
type Badger struct {
	db  *badger.DB
	log *atomic.Pointer[zap.Logger]

	// mu orders Close after every Create that got in: Create sends under
	// the read lock, Close closes the channel under the write lock.
	mu      sync.RWMutex
	closed  bool
	creates chan createReq
	done    chan struct{}
	// bgStop stops the background loops (badger_memory.go,
	// badger_gc.go) on Close; bg waits for them.
	bgStop chan struct{}
	bg     sync.WaitGroup
	// writes counts committed write transactions: the releaser's sign of
	// activity (badger_memory.go), read without touching Badger's state.
	writes atomic.Uint64
	// gcGate keeps value-log collection apart from writes, in race builds
	// only: Badger v4.9.6's RunValueLogGC reads the memtable's maxVersion
	// (DB.MaxVersion, under db.lock) while its write goroutine sets it
	// without that lock (memTable.Put), a race inside Badger that the
	// race detector reports whenever a collection overlaps a write. A
	// plain uint64 read and write on 64-bit platforms; in normal builds
	// the gate is not taken and writes never wait for a collection.
	gcGate sync.RWMutex

	// pending counts events pending delivery: counted once at open, then
	// changed by each committed transaction that changes the due index.
	pending atomic.Int64
	// damagedSeen holds the keys of damaged records already reported.
	damagedSeen sync.Map
	// rates are the grant rate limits' token buckets (see TakeToken).
	rates TokenBuckets

	// claims and leases live in memory: one process opens a Badger store,
	// so they only serve the contract (and tests) the fleet relies on.
	claimMu sync.Mutex
	claims  map[string]claim // by event id
	leases  map[string]claim // by lease name

	// transitions group-commits Update and Annotate (badger_update.go).
	transitions transitionQueue
}

// claim is who holds an event or a lease, and until when.
type claim struct {
	owner string
	until time.Time
	// ev is the event as ClaimDue read it: a delivery record written
	// for it takes the event's body (never rewritten) from it, and its
	// record too while the event has no record apart, instead of
	// reading and decoding the event again.
	ev *Event
}

// SetLogger makes the store (and Badger's own messages) log to l from now
// on: a reloaded config's logger replaces the first one's.
func (b *Badger) SetLogger(l *zap.Logger) {
	if l != nil {
		b.log.Store(l)
	}
}

func (b *Badger) logger() *zap.Logger { return b.log.Load() }

// damaged reports an unreadable record once per key: logged and counted.
func (b *Badger) damaged(kind, id string, err error) {
	if _, seen := b.damagedSeen.LoadOrStore(kind+"/"+id, true); seen {
		return
	}
	metrics.DamagedRecords.WithLabelValues(kind).Inc()
	b.logger().Error("damaged record skipped; everything else goes on",
		zap.String("kind", kind), zap.String("id", id), zap.Error(err))
}

// noteDamaged reports err if it is a damaged record's, and returns it.
func (b *Badger) noteDamaged(err error) error {
	var de *damagedError
	if errors.As(err, &de) {
		b.damaged(de.kind, de.id, de.err)
	}
	return err
}

// damagedError is the error of a record that cannot be read or decoded.
type damagedError struct {
	kind, id string
	err      error
}

func (e *damagedError) Error() string {
	return fmt.Sprintf("damaged %s %s: %v", e.kind, e.id, e.err)
}
func (e *damagedError) Is(target error) bool { return target == ErrDamaged }
func (e *damagedError) Unwrap() error        { return e.err }

// createReq is one Create waiting for the group commit.
type createReq struct {
	in  *Intent
	res chan error
}

// maxCreateBatch bounds one group commit of new intents.
const maxCreateBatch = 128

// OpenBadger opens (creating if needed) the store in dir. Every write is
// synced to disk before it returns.
func OpenBadger(dir string, logger *zap.Logger) (*Badger, error) {
	return openBadger(dir, logger, true)
}

// OpenBadgerUnsynced opens the store without syncing writes: they survive
// a crash of the process but not of the machine. For loading test data
// fast only; the product always uses OpenBadger.
func OpenBadgerUnsynced(dir string, logger *zap.Logger) (*Badger, error) {
	return openBadger(dir, logger, false)
}

func openBadger(dir string, logger *zap.Logger, sync bool) (*Badger, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	log := new(atomic.Pointer[zap.Logger])
	log.Store(logger)
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(sync).
		WithLogger(badgerLogger{log}).
		// Intents are small; keeping them in the LSM tree avoids value-log
		// garbage collection, and small tables keep the sparse files modest.
		WithValueThreshold(1 << 10).
		// Memory is bounded for a sidecar: two 8 MiB memtables and a
		// 16 MiB block cache instead of Badger's 5 × 64 MiB and 256 MiB.
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(16 << 20).
		// Table indexes and bloom filters go through a bounded cache
		// instead of all staying in memory as the store grows.
		WithIndexCacheSize(8 << 20).
		WithValueLogFileSize(valueLogFileSize).
		WithNumVersionsToKeep(1)
	opts = boundMemory(opts)
	if err := removeEmptyValueLogs(dir, logger); err != nil {
		return nil, err
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("opening badger at %s: %w", dir, err)
	}
	b := &Badger{db: db, log: log, creates: make(chan createReq, maxCreateBatch), done: make(chan struct{}),
		claims: map[string]claim{}, leases: map[string]claim{}}
	if err := b.migrateDue(); err != nil {
		db.Close()
		return nil, fmt.Errorf("moving the due index of %s: %w", dir, err)
	}
	n, err := b.countPending()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("counting pending events in %s: %w", dir, err)
	}
	b.pending.Store(n)
	go b.committer()
	b.startBackground()
	return b, nil
}

// migrateDue moves entries of the old due index ("d/" + due time + id,
// valued creation time + profile) to "q/" and "c/", a batch at a time.
func (b *Badger) migrateDue() error {
	for {
		moved := 0
		err := b.dbUpdate(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = oldDuePrefix
			it := txn.NewIterator(opts)
			defer it.Close()
			var keys, vals [][]byte
			for it.Rewind(); it.Valid() && len(keys) < 1000; it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				keys = append(keys, it.Item().KeyCopy(nil))
				vals = append(vals, v)
			}
			it.Close()
			for i, k := range keys {
				if len(k) < len(oldDuePrefix)+8 || len(vals[i]) < 8 {
					if err := txn.Delete(k); err != nil {
						return err
					}
					continue
				}
				due := time.Unix(0, int64(binary.BigEndian.Uint64(k[len(oldDuePrefix):])))
				id := string(k[len(oldDuePrefix)+8:])
				created := time.Unix(0, int64(binary.BigEndian.Uint64(vals[i][:8])))
				profile := string(vals[i][8:])
				if err := txn.Set(dueKey(profile, due, id), nil); err != nil {
					return err
				}
				if err := txn.Set(createdKey(created, id), nil); err != nil {
					return err
				}
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			moved = len(keys)
			return nil
		})
		if err != nil || moved == 0 {
			return err
		}
	}
}

// countPending counts the creation index: the events pending delivery.
func (b *Badger) countPending() (int64, error) {
	var n int64
	err := b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = createdPrefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// Close closes the database. Creates that got in before are written and
// answered first; later ones, and every other method, return ErrClosed.
func (b *Badger) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.creates)
	b.mu.Unlock()
	<-b.done
	close(b.bgStop)
	b.bg.Wait()
	return b.db.Close()
}

// Create implements Store.
//
// Concurrent creates are group-committed: the intents waiting while one
// synced write is in progress are written together by the next one, so a
// loaded server pays one fsync per batch instead of one per request. Each
// call still returns only once its intent is durable.
func (b *Badger) Create(ctx context.Context, in *Intent) error {
	if in.Status != StatusPending {
		return fmt.Errorf("creating intent %s: status must be pending, not %q", in.ID, in.Status)
	}
	res := resChans.Get().(chan error)
	// The committer drains the channel until Close closes it, and Close
	// cannot close it while a send holds the read lock: the send always
	// completes and the committer always answers.
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		resChans.Put(res)
		return ErrClosed
	}
	b.creates <- createReq{in: in, res: res}
	b.mu.RUnlock()
	err := <-res
	resChans.Put(res)
	return err
}

// committer writes waiting creates in batches, one transaction each.
func (b *Badger) committer() {
	defer close(b.done)
	for req := range b.creates {
		batch := []createReq{req}
	drain:
		for len(batch) < maxCreateBatch {
			select {
			case r, ok := <-b.creates:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		// The free space is checked once per batch, before it is
		// written, rather than once per Create: a statfs per grant.
		if err := b.roomToWrite(); err != nil {
			for _, r := range batch {
				r.res <- err
			}
			continue
		}
		errs, err := b.createAll(batch)
		if err != nil && len(batch) > 1 {
			// One bad apple (an id taken) must not fail the others.
			for _, r := range batch {
				errs, err := b.createAll([]createReq{r})
				if err == nil {
					err = errs[0]
				}
				r.res <- err
			}
			continue
		}
		for i, r := range batch {
			if err == nil {
				r.res <- errs[i]
			} else {
				r.res <- err
			}
		}
	}
}

// createAll writes a batch in one transaction. An intent over its quota
// (see reserveQuota) is refused alone, its error in errs; any other error
// fails the batch. Quota counters are shared with transitions, so a
// conflict with one is retried.
func (b *Badger) createAll(batch []createReq) (errs []error, err error) {
	for try := 0; ; try++ {
		errs = make([]error, len(batch))
		now := time.Now()
		ents := make([]badger.Entry, 0, entriesPerIntent*len(batch))
		err = mapErr(b.dbUpdate(func(txn *badger.Txn) error {
			for i, r := range batch {
				key, buf := newIntentKey(r.in)
				_, err := txn.Get(key)
				if err == nil {
					return ErrExists
				}
				if !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
				if r.in.Quota != nil {
					var qe *QuotaError
					if err := reserveQuota(txn, r.in, now); errors.As(err, &qe) {
						errs[i] = err
						continue
					} else if err != nil {
						return err
					}
				}
				if ents, err = putNewIntent(txn, ents, key, buf, r.in); err != nil {
					return err
				}
			}
			return nil
		}))
		if !errors.Is(err, ErrConflict) || try >= maxConflictRetries {
			return errs, err
		}
	}
}

// maxConflictRetries bounds the retries of a write that conflicted on a
// quota counter shared with other intents of the same subject.
const maxConflictRetries = 20

// Get implements Store.
func (b *Badger) Get(_ context.Context, id string) (*Intent, error) {
	return viewOne(b, id, getIntent)
}

// viewOne reads one record in a read-only transaction.
func viewOne[T any](b *Badger, id string, get func(*badger.Txn, string) (*T, error)) (*T, error) {
	var out *T
	err := b.db.View(func(txn *badger.Txn) error {
		var err error
		out, err = get(txn, id)
		return err
	})
	return out, b.noteDamaged(mapErr(err))
}

// getJSON decodes the JSON record at key; what names it in errors. A value
// that cannot be read or decoded is a *damagedError.
func getJSON[T any](txn *badger.Txn, key []byte, what, id string) (*T, error) {
	item, err := txn.Get(key)
	if err != nil {
		return nil, err
	}
	v := new(T)
	if err := item.Value(func(b []byte) error { return json.Unmarshal(b, v) }); err != nil {
		return nil, &damagedError{kind: what, id: id, err: err}
	}
	return v, nil
}

func getIntent(txn *badger.Txn, id string) (*Intent, error) {
	return getJSON[Intent](txn, intentKey(id), "intent", id)
}

// Update is in badger_update.go (group-committed with Annotate).

// update runs fn in a read-write transaction, or returns ErrClosed.
func (b *Badger) update(fn func(txn *badger.Txn) error) error {
	b.mu.RLock()
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return b.dbUpdate(fn)
}

// dbUpdate is every write transaction of the store: counted, and kept
// apart from value-log collection in race builds (gcGate).
func (b *Badger) dbUpdate(fn func(txn *badger.Txn) error) error {
	if raceEnabled {
		b.gcGate.RLock()
		defer b.gcGate.RUnlock()
	}
	err := b.db.Update(fn)
	b.writes.Add(1)
	return err
}

// Annotate is in badger_update.go.

// List implements Store.
func (b *Badger) List(_ context.Context, idx Index, t time.Time, after Cursor, limit int) ([]*Intent, Cursor, error) {
	prefix, ok := indexPrefix[idx]
	if !ok {
		return nil, nil, fmt.Errorf("unknown index %q", idx)
	}
	if t.Before(time.Unix(0, 0)) {
		// Nothing is due (every key's time is after 1970); the key of such
		// a t would sort after all of them.
		return nil, nil, nil
	}
	end := string(timeKey(prefix, t, ""))
	return b.scan(prefix, after, limit, func(k []byte) (string, bool) {
		if string(k) >= end {
			return "", false
		}
		return string(k[len(prefix)+8:]), true
	})
}

// ListStatus implements Store.
func (b *Badger) ListStatus(_ context.Context, status Status, profile string, after Cursor, limit int) ([]*Intent, Cursor, error) {
	prefix := append(append(append([]byte{}, statusPrefix...), status...), '/')
	if profile != "" {
		prefix = append(append(prefix, profile...), '/')
	}
	return b.scan(prefix, after, limit, func(k []byte) (string, bool) {
		return string(k[bytes.LastIndexByte(k, '/')+1:]), true
	})
}

// scan walks index keys under prefix after the cursor, turning each into an
// intent id until idOf says stop, and loads up to limit intents. The cursor
// it returns is the key of the last intent loaded when more may follow. An
// intent that cannot be read is reported and returned as a stub.
func (b *Badger) scan(prefix []byte, after Cursor, limit int, idOf func(k []byte) (string, bool)) ([]*Intent, Cursor, error) {
	var out []*Intent
	var last, next Cursor
	err := b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		start := prefix
		if after != nil {
			start = append(append([]byte{}, after...), 0)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			k := it.Item().Key()
			id, ok := idOf(k)
			if !ok {
				return nil
			}
			if len(out) == limit {
				next = last
				return nil
			}
			in, err := getIntent(txn, id)
			var de *damagedError
			switch {
			case errors.Is(err, badger.ErrKeyNotFound):
				err = errors.New("an index names it but there is no record")
				b.damaged("intent", id, err)
				in = &Intent{ID: id, Damaged: err.Error()}
			case errors.As(err, &de):
				b.damaged(de.kind, de.id, de.err)
				in = &Intent{ID: id, Damaged: de.err.Error()}
			case err != nil:
				return fmt.Errorf("index names intent %s: %w", id, err)
			}
			last = append(Cursor{}, k...)
			out = append(out, in)
		}
		return nil
	})
	return out, next, mapErr(err)
}

// Prune implements Store.
func (b *Badger) Prune(_ context.Context, id string) error {
	return b.noteDamaged(mapErr(b.update(func(txn *badger.Txn) error {
		in, err := getIntent(txn, id)
		if err != nil {
			return err
		}
		if !in.Status.Final() || !in.Settled {
			return ErrStateChanged
		}
		for _, eid := range in.Events {
			ev, err := getEvent(txn, eid)
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if ev.Delivery.State == DeliveryPending {
				return ErrStateChanged
			}
			if err := txn.Delete(outboxKey(eid)); err != nil {
				return err
			}
			if err := txn.Delete(deliveryKey(eid)); err != nil {
				return err
			}
		}
		for _, k := range indexKeys(in) {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return txn.Delete(intentKey(id))
	})))
}

// OutboxStats implements Store: the counter kept by the transactions, and
// one seek into the index by creation time.
func (b *Badger) OutboxStats(_ context.Context) (int, time.Time, error) {
	oldest := time.Time{}
	err := b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = createdPrefix
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Rewind()
		if it.Valid() {
			k := it.Item().Key()
			if len(k) >= len(createdPrefix)+8 {
				oldest = time.Unix(0, int64(binary.BigEndian.Uint64(k[len(createdPrefix):])))
			}
		}
		return nil
	})
	return int(b.pending.Load()), oldest, mapErr(err)
}

// Events implements Store.
func (b *Badger) Events(_ context.Context, state DeliveryState, after string, limit int) ([]Event, error) {
	var out []Event
	err := b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = outboxPrefix
		it := txn.NewIterator(opts)
		defer it.Close()
		dopts := badger.DefaultIteratorOptions
		dopts.Prefix = deliveryPrefix
		dit := txn.NewIterator(dopts)
		defer dit.Close()
		var dk []byte
		start := outboxPrefix
		if after != "" {
			start = append(outboxKey(after), 0)
		}
		for it.Seek(start); it.Valid() && len(out) < limit; it.Next() {
			var ev Event
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &ev) }); err != nil {
				id := string(it.Item().Key()[len(outboxPrefix):])
				b.damaged("event", id, err)
				out = append(out, Event{ID: id, Damaged: err.Error()})
				continue
			}
			dk = append(append(dk[:0], deliveryPrefix...), it.Item().Key()[len(outboxPrefix):]...)
			if dit.Seek(dk); dit.Valid() && bytes.Equal(dit.Item().Key(), dk) {
				d, err := decodeDelivery(dit.Item(), ev.ID)
				if err != nil {
					b.damaged("event", ev.ID, err)
					out = append(out, Event{ID: ev.ID, Damaged: err.Error()})
					continue
				}
				ev.Delivery = d
			}
			if state == "" || ev.Delivery.State == state {
				out = append(out, ev)
			}
		}
		return nil
	})
	return out, mapErr(err)
}

// Event implements Store.
func (b *Badger) Event(_ context.Context, id string) (*Event, error) {
	return viewOne(b, id, getEvent)
}

func getEvent(txn *badger.Txn, id string) (*Event, error) {
	ev, err := getJSON[Event](txn, outboxKey(id), "event", id)
	if err != nil {
		return nil, err
	}
	return ev, overlayDelivery(txn, ev)
}

// DueEvents implements Store: for each profile in the due index, it reads
// that profile's earliest keys, then seeks past the profile.
func (b *Badger) DueEvents(_ context.Context, t time.Time, perProfile int) ([]Due, error) {
	return b.dueEvents(t, perProfile, nil, nil)
}

// dueEvents lists due events as DueEvents does, leaving out (and not
// counting toward perProfile) those skip says to; apart, if not nil, is
// told the listed events whose due entry says they have a delivery
// record apart (see dueApart).
func (b *Badger) dueEvents(t time.Time, perProfile int, skip func(id string) bool, apart func(id string)) ([]Due, error) {
	var out []Due
	until := binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
	err := b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = duePrefix
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Seek(duePrefix)
		for it.Valid() {
			k := it.Item().Key()
			rest := k[len(duePrefix):]
			if len(rest) < 2 || len(rest) < 2+int(binary.BigEndian.Uint16(rest))+8 {
				it.Next() // not a key this version writes
				continue
			}
			profile := string(rest[2 : 2+binary.BigEndian.Uint16(rest)])
			pp := dueProfilePrefix(profile)
			for n := 0; n < perProfile && it.Valid(); it.Next() {
				k := it.Item().Key()
				if !bytes.HasPrefix(k, pp) || len(k) < len(pp)+8 || bytes.Compare(k[len(pp):len(pp)+8], until) > 0 {
					break
				}
				id := string(k[len(pp)+8:])
				if skip != nil && skip(id) {
					continue
				}
				if apart != nil && it.Item().ValueSize() > 0 {
					apart(id)
				}
				out = append(out, Due{EventID: id, Profile: profile})
				n++
			}
			next := prefixEnd(pp)
			if next == nil {
				break
			}
			it.Seek(next)
		}
		return nil
	})
	return out, mapErr(err)
}

// SetDelivery implements Store.
func (b *Badger) SetDelivery(_ context.Context, id string, d Delivery) (*Event, error) {
	var out *Event
	var delta int64
	err := b.update(func(txn *badger.Txn) error {
		var err error
		out, delta, err = setDelivery(txn, id, d)
		return err
	})
	if err != nil {
		return nil, b.noteDamaged(mapErr(err))
	}
	b.pending.Add(delta)
	b.endClaims([]string{id})
	return out, nil
}

// SetDeliveries implements Store. A claimed event is not read again:
// the claim holds it (see currentDelivery).
func (b *Badger) SetDeliveries(_ context.Context, updates map[string]Delivery) error {
	var delta int64
	cached := b.claimedEvents(updates)
	err := b.update(func(txn *badger.Txn) error {
		for id, d := range updates {
			_, n, err := setDeliveryFrom(txn, id, d, cached[id])
			if err != nil {
				return err
			}
			delta += n
		}
		return nil
	})
	if err != nil {
		return b.noteDamaged(mapErr(err))
	}
	b.pending.Add(delta)
	ids := make([]string, 0, len(updates))
	for id := range updates {
		ids = append(ids, id)
	}
	b.endClaims(ids)
	return nil
}

// endClaims ends the claims on events whose delivery record was written.
func (b *Badger) endClaims(ids []string) {
	b.claimMu.Lock()
	defer b.claimMu.Unlock()
	for _, id := range ids {
		delete(b.claims, id)
	}
}

// ClaimDue implements Store. Claims are kept in memory; the due index is
// read as DueEvents does, skipping events under a live claim, under the
// claims' lock so that two callers never claim one event.
func (b *Badger) ClaimDue(_ context.Context, owner string, t time.Time, lease time.Duration, perProfile int) ([]Due, error) {
	if b.isClosed() {
		return nil, ErrClosed
	}
	b.claimMu.Lock()
	defer b.claimMu.Unlock()
	var apart map[string]bool
	out, err := b.dueEvents(t, perProfile, func(id string) bool {
		c, ok := b.claims[id]
		return ok && t.Before(c.until)
	}, func(id string) {
		if apart == nil {
			apart = map[string]bool{}
		}
		apart[id] = true
	})
	if err != nil {
		return nil, err
	}
	read := b.readClaimed(out, apart)
	for i, du := range out {
		c := claim{owner: owner, until: t.Add(lease)}
		if r, ok := read[du.EventID]; ok {
			c.ev = r.ev
			cp := *r.ev // the caller's copy: the cached one stays as stored
			out[i].Event = &cp
		}
		b.claims[du.EventID] = c
	}
	// Claims of events that left the due index meanwhile go.
	for id, c := range b.claims {
		if !t.Before(c.until) {
			delete(b.claims, id)
		}
	}
	return out, nil
}

// Unclaim implements Store.
func (b *Badger) Unclaim(_ context.Context, owner string, ids []string) error {
	if b.isClosed() {
		return ErrClosed
	}
	b.claimMu.Lock()
	defer b.claimMu.Unlock()
	for _, id := range ids {
		if b.claims[id].owner == owner {
			delete(b.claims, id)
		}
	}
	return nil
}

// AcquireLease implements Store, in memory with the process's clock: one
// process opens a Badger store, so its sweeper always gets the lease; a
// second owner (tests) sees the same semantics as with PostgreSQL.
func (b *Badger) AcquireLease(_ context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if b.isClosed() {
		return false, ErrClosed
	}
	now := time.Now()
	b.claimMu.Lock()
	defer b.claimMu.Unlock()
	if c, ok := b.leases[name]; ok && c.owner != owner && now.Before(c.until) {
		return false, nil
	}
	b.leases[name] = claim{owner: owner, until: now.Add(ttl)}
	return true, nil
}

// ReleaseLease implements Store.
func (b *Badger) ReleaseLease(_ context.Context, name, owner string) error {
	if b.isClosed() {
		return ErrClosed
	}
	b.claimMu.Lock()
	defer b.claimMu.Unlock()
	if b.leases[name].owner == owner {
		delete(b.leases, name)
	}
	return nil
}

func (b *Badger) isClosed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.closed
}

// setDelivery writes d if its version is 0 or the stored one, and returns
// the change in the number of pending events (-1, 0 or +1).
func setDelivery(txn *badger.Txn, id string, d Delivery) (*Event, int64, error) {
	return setDeliveryFrom(txn, id, d, claimRead{})
}

// setDeliveryFrom is setDelivery starting from c.ev, the event as
// claimed, if not nil (see currentDelivery).
func setDeliveryFrom(txn *badger.Txn, id string, d Delivery, c claimRead) (*Event, int64, error) {
	ev, err := currentDelivery(txn, id, c)
	if err != nil {
		return nil, 0, err
	}
	if d.Version != 0 && d.Version != ev.Delivery.Version {
		return nil, 0, ErrStateChanged
	}
	version := ev.Delivery.Version + 1
	var delta int64
	if ev.Delivery.State == DeliveryPending {
		delta--
		if err := txn.Delete(dueKey(ev.Intent.Profile, ev.Delivery.NextAttemptAt, id)); err != nil {
			return nil, 0, err
		}
		if err := txn.Delete(createdKey(ev.CreatedAt, id)); err != nil {
			return nil, 0, err
		}
	}
	ev.Delivery = d
	ev.Delivery.Version = version
	val, err := marshalDelivery(&ev.Delivery)
	if err != nil {
		return nil, 0, fmt.Errorf("encoding delivery record: %w", err)
	}
	if err := txn.Set(deliveryKey(id), val); err != nil {
		return nil, 0, err
	}
	if d.State == DeliveryPending {
		delta++
		if err := txn.Set(dueKey(ev.Intent.Profile, d.NextAttemptAt, id), dueApart); err != nil {
			return nil, 0, err
		}
		if err := txn.Set(createdKey(ev.CreatedAt, id), nil); err != nil {
			return nil, 0, err
		}
	}
	return ev, delta, nil
}

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return ErrNotFound
	case errors.Is(err, badger.ErrConflict):
		return ErrConflict
	case errors.Is(err, badger.ErrDBClosed):
		return ErrClosed
	}
	return err
}

// badgerLogger sends Badger's log lines to the store's current zap logger;
// the sugared logger has no Warningf, which Badger's Logger interface needs.
type badgerLogger struct{ l *atomic.Pointer[zap.Logger] }

func (l badgerLogger) s() *zap.SugaredLogger       { return l.l.Load().Sugar() }
func (l badgerLogger) Errorf(f string, a ...any)   { l.s().Errorf(f, a...) }
func (l badgerLogger) Warningf(f string, a ...any) { l.s().Warnf(f, a...) }
func (l badgerLogger) Infof(f string, a ...any)    { l.s().Debugf(f, a...) }
func (l badgerLogger) Debugf(f string, a ...any)   { l.s().Debugf(f, a...) }

var _ Store = (*Badger)(nil)
