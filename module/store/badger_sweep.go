package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// maxBatchTxn is how many items of UpdateBatch one transaction writes (a
// group is halved again if Badger finds it too big).
const maxBatchTxn = 128

// UpdateBatch implements Store: the items are written a group per
// transaction, so a group costs one synced write instead of one per item.
func (b *Badger) UpdateBatch(_ context.Context, ups []BatchUpdate) error {
	var first error
	fail := func(group []BatchUpdate, err error) {
		for i := range group {
			group[i].Out, group[i].Err = nil, err
		}
		if first == nil {
			first = err
		}
	}
	if err := b.roomToWrite(); err != nil {
		fail(ups, err)
		return err
	}
	size := maxBatchTxn
	for start := 0; start < len(ups); {
		n := min(size, len(ups)-start)
		group := ups[start : start+n]
		written, err := b.updateGroup(group)
		if errors.Is(err, badger.ErrTxnTooBig) && n > 1 {
			size = n / 2 // nothing of this group was written: again, smaller
			continue
		}
		if err != nil {
			fail(group, b.noteDamaged(mapErr(err)))
		} else {
			b.pending.Add(int64(written))
		}
		start += n
	}
	return first
}

// updateGroup writes the items of group that succeed in one transaction,
// and returns how many were written. An item's own refusal (not found,
// status changed, its transition's error, a damaged record) is recorded
// on it and writes nothing of it; any other error fails the whole group.
func (b *Badger) updateGroup(group []BatchUpdate) (int, error) {
	written := 0
	err := b.updateRetry(func(txn *badger.Txn) error {
		written = 0
		for i := range group {
			u := &group[i]
			u.Out, u.Err = nil, nil
			out, err := transitionIn(txn, u.ID, u.From, u.T)
			switch {
			case err == nil:
				u.Out = out
				written++
			case errors.Is(err, errItem):
				u.Err = b.noteDamaged(mapErr(errors.Unwrap(err)))
			default:
				return err
			}
		}
		return nil
	})
	if err != nil {
		for i := range group {
			group[i].Out, group[i].Err = nil, nil
		}
		return 0, err
	}
	return written, nil
}

// errItem marks an error of transitionIn that refuses one item and wrote
// nothing of it: the transaction goes on with the others.
var errItem = errors.New("item refused")

type itemError struct{ err error }

func (e itemError) Error() string        { return e.err.Error() }
func (e itemError) Is(target error) bool { return target == errItem }
func (e itemError) Unwrap() error        { return e.err }

// transitionIn is Update's work inside txn: read the intent, check its
// status, apply t, write the intent, its index entries, the quota change
// and the event. Errors found before anything is written are itemErrors.
func transitionIn(txn *badger.Txn, id string, from Status, t Transition) (*Intent, error) {
	in, err := getIntent(txn, id)
	if err != nil {
		var de *damagedError
		if errors.Is(err, badger.ErrKeyNotFound) || errors.As(err, &de) {
			return nil, itemError{err}
		}
		return nil, err
	}
	if in.Status != from {
		return nil, itemError{ErrStateChanged}
	}
	old := *in
	ev, err := t(in)
	if err != nil {
		return nil, itemError{err}
	}
	if ev.ID == "" || ev.Type == "" {
		return nil, itemError{fmt.Errorf("transition of intent %s returned no event", id)}
	}
	in.EventID = ev.ID
	in.Events = append(in.Events, ev.ID)
	ev.Intent = *in
	ev.Intent.Events = nil
	ev.Delivery = Delivery{State: DeliveryPending, NextAttemptAt: ev.CreatedAt, Version: 1}
	evVal, err := json.Marshal(ev)
	if err != nil {
		return nil, itemError{fmt.Errorf("encoding event: %w", err)}
	}
	if err := putIntent(txn, &old, in); err != nil {
		return nil, err
	}
	if err := releaseQuota(txn, &old, in); err != nil {
		return nil, err
	}
	if err := txn.Set(outboxKey(ev.ID), evVal); err != nil {
		return nil, err
	}
	if err := txn.Set(dueKey(in.Profile, ev.CreatedAt, ev.ID), nil); err != nil {
		return nil, err
	}
	if err := txn.Set(createdKey(ev.CreatedAt, ev.ID), nil); err != nil {
		return nil, err
	}
	return in, nil
}
