package store

import (
	"bytes"
	"encoding/json"

	"math"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// The delivery path of the Badger store: what a busy dispatcher does per
// event (claim, read, record) without decoding an event twice.

// claimRead is an event as ClaimDue read it (nil: none).
type claimRead struct {
	ev *Event
}

// readClaimed reads the events just claimed, in one read transaction,
// with one iterator seeking from id to id in key order: a point read per
// event would build its own table iterators (and load its block) each
// time. Only the events apart names (their due entry says so) have a
// delivery record apart to read; the others' is the one inside the
// event. An event that cannot be read is left out: the caller reads it
// itself and meets the error there. b.claimMu is held.
func (b *Badger) readClaimed(due []Due, apart map[string]bool) map[string]claimRead {
	if len(due) == 0 {
		return nil
	}
	keys := make([][]byte, len(due))
	for i, du := range due {
		keys[i] = outboxKey(du.EventID)
	}
	slices.SortFunc(keys, bytes.Compare)
	out := make(map[string]claimRead, len(due))
	_ = b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = outboxPrefix
		it := txn.NewIterator(opts)
		defer it.Close()
		var dit *badger.Iterator
		var dk []byte
		for i, k := range keys {
			seekNear(it, k, i > 0)
			if !it.Valid() || !bytes.Equal(it.Item().Key(), k) {
				continue
			}
			item := it.Item()
			ev := new(Event)
			if item.Value(func(v []byte) error { return json.Unmarshal(v, ev) }) != nil {
				continue
			}
			id := string(k[len(outboxPrefix):])
			if !apart[id] {
				out[id] = claimRead{ev: ev}
				continue
			}
			// Its delivery record apart, with the second iterator,
			// in the same key order.
			if dit == nil {
				opts.Prefix = deliveryPrefix
				dit = txn.NewIterator(opts)
				defer dit.Close()
			}
			dk = append(append(dk[:0], deliveryPrefix...), id...)
			dit.Seek(dk)
			if dit.Valid() && bytes.Equal(dit.Item().Key(), dk) {
				d, err := decodeDelivery(dit.Item(), id)
				if err != nil {
					continue
				}
				ev.Delivery = d
			}
			out[id] = claimRead{ev: ev}
		}
		return nil
	})
	return out
}

// seekNear moves it to the first key at or after k, as Seek does; if it
// is already positioned (moved, before k, by an earlier call with a
// smaller key) it first steps forward a few keys: the events a pass
// claims are mostly neighbours in key order, and a step costs much less
// than a seek, which repositions the iterator of every table.
func seekNear(it *badger.Iterator, k []byte, positioned bool) {
	if positioned {
		for i := 0; i < 4 && it.Valid(); i++ {
			if bytes.Compare(it.Item().Key(), k) >= 0 {
				return
			}
			it.Next()
		}
		if it.Valid() && bytes.Compare(it.Item().Key(), k) >= 0 {
			return
		}
	}
	it.Seek(k)
}

// claimedEvents returns the events claims hold for the ids updated.
func (b *Badger) claimedEvents(updates map[string]Delivery) map[string]claimRead {
	b.claimMu.Lock()
	defer b.claimMu.Unlock()
	var out map[string]claimRead
	for id := range updates {
		if c, ok := b.claims[id]; ok && c.ev != nil {
			if out == nil {
				out = make(map[string]claimRead, len(updates))
			}
			out[id] = claimRead{ev: c.ev}
		}
	}
	return out
}

// marshalEvent is json.Marshal(ev), byte for byte, without reflection for
// the event and its delivery record (the intent goes through
// marshalIntent): the dispatcher writes one per attempt. Anything it does
// not write the same way itself goes through json.Marshal.
func marshalEvent(ev *Event) ([]byte, error) {
	d := &ev.Delivery
	if !jsonTime(ev.CreatedAt) || !plainDelivery(d) {
		return json.Marshal(ev)
	}
	in, err := marshalIntent(&ev.Intent)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(in)+256+len(d.Response)+len(d.LastError))
	b = appendString(append(b, `{"id":`...), ev.ID)
	b = appendString(append(b, `,"type":`...), ev.Type)
	b = appendTime(append(b, `,"created_at":`...), ev.CreatedAt)
	b = append(append(b, `,"intent":`...), in...)
	b = appendDelivery(append(b, `,"delivery":`...), d)
	if ev.Damaged != "" {
		b = appendString(append(b, `,"damaged":`...), ev.Damaged)
	}
	return append(b, '}'), nil
}

// plainFloat reports whether encoding/json writes f as
// strconv.AppendFloat(f, 'f', -1, 64) does: finite, and zero or within
// [1e-6, 1e21) in magnitude (outside it, json uses an exponent).
func plainFloat(f float64) bool {
	a := math.Abs(f)
	return !math.IsNaN(f) && !math.IsInf(f, 0) && (a == 0 || a >= 1e-6 && a < 1e21)
}
