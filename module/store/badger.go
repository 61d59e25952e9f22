package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Key layout. Intents live under "i/", the expiry index of pending intents
// under "x/" (big-endian expiry then id, so a prefix scan walks expiries in
// order), and the outbox under "o/" by event id (time-ordered ids keep the
// outbox in write order). Badger's own TTL is never used: it would hide
// expired intents from the sweeper that has to find them.
var (
	intentPrefix   = []byte("i/")
	expiryPrefix   = []byte("x/")
	recheckPrefix  = []byte("r/")
	finishedPrefix = []byte("f/")
	statusPrefix   = []byte("s/")
	outboxPrefix   = []byte("o/")
	duePrefix      = []byte("d/")
)

var indexPrefix = map[Index][]byte{ByExpiry: expiryPrefix, ByRecheck: recheckPrefix, ByFinished: finishedPrefix}

// indexKeys are the index entries an intent has in its current state:
// one by status (and profile), and one time index by where it is in its
// life. Every write of an intent replaces the old entries with these.
func indexKeys(in *Intent) [][]byte {
	sk := append(append(append(append([]byte{}, statusPrefix...), in.Status...), '/'), in.Profile...)
	sk = append(append(sk, '/'), in.ID...)
	keys := [][]byte{sk}
	switch {
	case in.Status == StatusPending:
		keys = append(keys, timeKey(expiryPrefix, in.ExpiresAt, in.ID))
	case !in.Settled:
		keys = append(keys, timeKey(recheckPrefix, in.ExpiresAt, in.ID))
	default:
		keys = append(keys, timeKey(finishedPrefix, in.UpdatedAt, in.ID))
	}
	return keys
}

// putIntent writes in, replacing the index entries of old (nil if new).
func putIntent(txn *badger.Txn, old, in *Intent) error {
	val, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding intent: %w", err)
	}
	if err := txn.Set(intentKey(in.ID), val); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, k := range indexKeys(in) {
		keep[string(k)] = true
		if err := txn.Set(k, nil); err != nil {
			return err
		}
	}
	if old != nil {
		for _, k := range indexKeys(old) {
			if !keep[string(k)] {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func intentKey(id string) []byte { return append(append([]byte{}, intentPrefix...), id...) }

func outboxKey(id string) []byte { return append(append([]byte{}, outboxPrefix...), id...) }

// timeKey is prefix, then t as big-endian nanoseconds, then id: a prefix
// scan walks such keys in time order.
func timeKey(prefix []byte, t time.Time, id string) []byte {
	k := make([]byte, 0, len(prefix)+8+len(id))
	k = append(k, prefix...)
	k = binary.BigEndian.AppendUint64(k, uint64(t.UnixNano()))
	return append(k, id...)
}

func dueKey(t time.Time, id string) []byte { return timeKey(duePrefix, t, id) }

// Badger is the Store kept in an embedded Badger database on local disk.
// One process may open a directory at a time.
type Badger struct {
	db      *badger.DB
	creates chan createReq
	done    chan struct{}
}

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
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(sync).
		WithLogger(badgerLogger{logger.Sugar()}).
		// Intents are small; keeping them in the LSM tree avoids value-log
		// garbage collection, and small tables keep the sparse files modest.
		WithValueThreshold(1 << 10).
		// Memory is bounded for a sidecar: two 8 MiB memtables and a
		// 16 MiB block cache instead of Badger's 5 × 64 MiB and 256 MiB.
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(16 << 20).
		// Table indexes and bloom filters go through a bounded cache
		// instead of all staying in memory as the store grows.
		WithIndexCacheSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumVersionsToKeep(1)
	if err := removeEmptyValueLogs(dir, logger); err != nil {
		return nil, err
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("opening badger at %s: %w", dir, err)
	}
	b := &Badger{db: db, creates: make(chan createReq, maxCreateBatch), done: make(chan struct{})}
	go b.committer()
	return b, nil
}

// Close closes the database.
func (b *Badger) Close() error {
	close(b.creates)
	<-b.done
	return b.db.Close()
}

// Create implements Store.
//
// Concurrent creates are group-committed: the intents waiting while one
// synced write is in progress are written together by the next one, so a
// loaded server pays one fsync per batch instead of one per request. Each
// call still returns only once its intent is durable.
func (b *Badger) Create(ctx context.Context, in *Intent) (err error) {
	if in.Status != StatusPending {
		return fmt.Errorf("creating intent %s: status must be pending, not %q", in.ID, in.Status)
	}
	if err := b.roomToWrite(); err != nil {
		return err
	}
	defer func() {
		if recover() != nil { // sending on the closed channel of a closed store
			err = ErrClosed
		}
	}()
	res := make(chan error, 1)
	b.creates <- createReq{in: in, res: res}
	return <-res
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
		err := b.createAll(batch)
		if err != nil && len(batch) > 1 {
			// One bad apple (an id taken) must not fail the others.
			for _, r := range batch {
				r.res <- b.createAll([]createReq{r})
			}
			continue
		}
		for _, r := range batch {
			r.res <- err
		}
	}
}

func (b *Badger) createAll(batch []createReq) error {
	return mapErr(b.db.Update(func(txn *badger.Txn) error {
		for _, r := range batch {
			_, err := txn.Get(intentKey(r.in.ID))
			if err == nil {
				return ErrExists
			}
			if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			if err := putIntent(txn, nil, r.in); err != nil {
				return err
			}
		}
		return nil
	}))
}

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
	return out, mapErr(err)
}

// getJSON decodes the JSON record at key; what names it in errors.
func getJSON[T any](txn *badger.Txn, key []byte, what, id string) (*T, error) {
	item, err := txn.Get(key)
	if err != nil {
		return nil, err
	}
	v := new(T)
	if err := item.Value(func(b []byte) error { return json.Unmarshal(b, v) }); err != nil {
		return nil, fmt.Errorf("decoding %s %s: %w", what, id, err)
	}
	return v, nil
}

func getIntent(txn *badger.Txn, id string) (*Intent, error) {
	return getJSON[Intent](txn, intentKey(id), "intent", id)
}

// Update implements Store.
func (b *Badger) Update(_ context.Context, id string, from Status, t Transition) (*Intent, error) {
	if err := b.roomToWrite(); err != nil {
		return nil, err
	}
	var out *Intent
	err := b.db.Update(func(txn *badger.Txn) error {
		in, err := getIntent(txn, id)
		if err != nil {
			return err
		}
		if in.Status != from {
			return ErrStateChanged
		}
		old := *in
		ev, err := t(in)
		if err != nil {
			return err
		}
		if ev.ID == "" || ev.Type == "" {
			return fmt.Errorf("transition of intent %s returned no event", id)
		}
		in.EventID = ev.ID
		in.Events = append(in.Events, ev.ID)
		ev.Intent = *in
		ev.Intent.Events = nil
		ev.Delivery = Delivery{State: DeliveryPending, NextAttemptAt: ev.CreatedAt}
		evVal, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encoding event: %w", err)
		}
		if err := putIntent(txn, &old, in); err != nil {
			return err
		}
		if err := txn.Set(outboxKey(ev.ID), evVal); err != nil {
			return err
		}
		if err := txn.Set(dueKey(ev.CreatedAt, ev.ID), dueValue(in.Profile, ev.CreatedAt)); err != nil {
			return err
		}
		out = in
		return nil
	})
	if err != nil {
		return nil, mapErr(err)
	}
	return out, nil
}

// dueValue is what the due index keeps beside an event id: its creation
// time (for the outbox's age) and profile (to find its endpoint).
func dueValue(profile string, created time.Time) []byte {
	v := binary.BigEndian.AppendUint64(nil, uint64(created.UnixNano()))
	return append(v, profile...)
}

// Annotate implements Store.
func (b *Badger) Annotate(_ context.Context, id string, from Status, fn func(*Intent)) (*Intent, error) {
	if err := b.roomToWrite(); err != nil {
		return nil, err
	}
	var out *Intent
	err := b.db.Update(func(txn *badger.Txn) error {
		in, err := getIntent(txn, id)
		if err != nil {
			return err
		}
		if in.Status != from {
			return ErrStateChanged
		}
		old := *in
		fn(in)
		if in.Status != from || !in.ExpiresAt.Equal(old.ExpiresAt) || in.ID != id {
			return fmt.Errorf("annotating intent %s changed its status, expiry or id", id)
		}
		out = in
		return putIntent(txn, &old, in)
	})
	if err != nil {
		return nil, mapErr(err)
	}
	return out, nil
}

// List implements Store.
func (b *Badger) List(_ context.Context, idx Index, t time.Time, after Cursor, limit int) ([]*Intent, Cursor, error) {
	prefix, ok := indexPrefix[idx]
	if !ok {
		return nil, nil, fmt.Errorf("unknown index %q", idx)
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
// it returns is the key of the last intent loaded when more may follow.
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
			if err != nil {
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
	return mapErr(b.db.Update(func(txn *badger.Txn) error {
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
		}
		for _, k := range indexKeys(in) {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return txn.Delete(intentKey(id))
	}))
}

// OutboxStats implements Store.
func (b *Badger) OutboxStats(_ context.Context) (int, time.Time, error) {
	n, oldest := 0, time.Time{}
	err := b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = duePrefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
			err := it.Item().Value(func(v []byte) error {
				if len(v) >= 8 {
					t := time.Unix(0, int64(binary.BigEndian.Uint64(v[:8])))
					if oldest.IsZero() || t.Before(oldest) {
						oldest = t
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return n, oldest, mapErr(err)
}

// Events implements Store.
func (b *Badger) Events(_ context.Context, state DeliveryState, after string, limit int) ([]Event, error) {
	var out []Event
	err := b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = outboxPrefix
		it := txn.NewIterator(opts)
		defer it.Close()
		start := outboxPrefix
		if after != "" {
			start = append(outboxKey(after), 0)
		}
		for it.Seek(start); it.Valid() && len(out) < limit; it.Next() {
			var ev Event
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &ev) }); err != nil {
				return fmt.Errorf("decoding event: %w", err)
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
	return getJSON[Event](txn, outboxKey(id), "event", id)
}

// DueEvents implements Store.
func (b *Badger) DueEvents(_ context.Context, t time.Time, limit int) ([]Due, error) {
	var out []Due
	end := dueKey(t.Add(time.Nanosecond), "")
	err := b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = duePrefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(duePrefix); it.Valid() && len(out) < limit; it.Next() {
			k := it.Item().Key()
			if string(k) >= string(end) {
				break
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) >= 8 {
				v = v[8:]
			}
			out = append(out, Due{EventID: string(k[len(duePrefix)+8:]), Profile: string(v)})
		}
		return nil
	})
	return out, mapErr(err)
}

// SetDelivery implements Store.
func (b *Badger) SetDelivery(_ context.Context, id string, d Delivery) (*Event, error) {
	var out *Event
	err := b.db.Update(func(txn *badger.Txn) error {
		var err error
		out, err = setDelivery(txn, id, d)
		return err
	})
	return out, mapErr(err)
}

// SetDeliveries implements Store.
func (b *Badger) SetDeliveries(_ context.Context, updates map[string]Delivery) error {
	return mapErr(b.db.Update(func(txn *badger.Txn) error {
		for id, d := range updates {
			if _, err := setDelivery(txn, id, d); err != nil {
				return err
			}
		}
		return nil
	}))
}

func setDelivery(txn *badger.Txn, id string, d Delivery) (*Event, error) {
	ev, err := getEvent(txn, id)
	if err != nil {
		return nil, err
	}
	if ev.Delivery.State == DeliveryPending {
		if err := txn.Delete(dueKey(ev.Delivery.NextAttemptAt, id)); err != nil {
			return nil, err
		}
	}
	ev.Delivery = d
	val, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encoding event: %w", err)
	}
	if err := txn.Set(outboxKey(id), val); err != nil {
		return nil, err
	}
	if d.State == DeliveryPending {
		if err := txn.Set(dueKey(d.NextAttemptAt, id), dueValue(ev.Intent.Profile, ev.CreatedAt)); err != nil {
			return nil, err
		}
	}
	return ev, nil
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

// badgerLogger sends Badger's log lines to zap; the sugared logger has no
// Warningf, which Badger's Logger interface needs.
type badgerLogger struct{ s *zap.SugaredLogger }

func (l badgerLogger) Errorf(f string, a ...any)   { l.s.Errorf(f, a...) }
func (l badgerLogger) Warningf(f string, a ...any) { l.s.Warnf(f, a...) }
func (l badgerLogger) Infof(f string, a ...any)    { l.s.Debugf(f, a...) }
func (l badgerLogger) Debugf(f string, a ...any)   { l.s.Debugf(f, a...) }

var _ Store = (*Badger)(nil)
