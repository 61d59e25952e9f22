package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// maxBatchTx is how many items of UpdateBatch one transaction writes.
const maxBatchTx = 128

// UpdateBatch implements store.Store: a group of items per transaction,
// their rows locked in id order (so concurrent batches wait for each other
// rather than deadlock), every write of the group sent in one batch and
// committed once.
func (s *Store) UpdateBatch(ctx context.Context, ups []store.BatchUpdate) error {
	order := make([]int, len(ups))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(ups[a].ID, ups[b].ID) })
	var first error
	for start := 0; start < len(order); start += maxBatchTx {
		group := order[start:min(start+maxBatchTx, len(order))]
		err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			b := new(pgx.Batch)
			for k, i := range group {
				u := &ups[i]
				if k > 0 && ups[group[k-1]].ID == u.ID && b.Len() > 0 {
					// The same intent again (ids are sorted): its read
					// must see the writes queued so far.
					if err := tx.SendBatch(ctx, b).Close(); err != nil {
						return err
					}
					b = new(pgx.Batch)
				}
				u.Out, u.Err = nil, nil
				out, err := s.transitionIn(ctx, tx, b, u.ID, u.From, u.T)
				var ie itemError
				switch {
				case err == nil:
					u.Out = out
				case errors.As(err, &ie):
					u.Err = s.noteDamaged(mapErr(ie.err))
				default:
					return err
				}
			}
			return tx.SendBatch(ctx, b).Close()
		})
		if err != nil {
			for _, i := range group {
				ups[i].Out, ups[i].Err = nil, err
			}
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// itemError refuses one item of a batch; nothing of it was queued.
type itemError struct{ err error }

func (e itemError) Error() string { return e.err.Error() }

// transitionIn is Update's work on one item inside tx, its writes queued
// on b. Errors found before anything is queued are itemErrors.
func (s *Store) transitionIn(ctx context.Context, tx pgx.Tx, b *pgx.Batch, id string, from store.Status, t store.Transition) (*store.Intent, error) {
	in, err := getIntent(ctx, tx, s.n, id, true)
	if err != nil {
		var de *damagedError
		if errors.Is(err, pgx.ErrNoRows) || errors.As(err, &de) {
			return nil, itemError{err}
		}
		return nil, err
	}
	if in.Status != from {
		return nil, itemError{store.ErrStateChanged}
	}
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
	ev.Delivery = store.Delivery{State: store.DeliveryPending, NextAttemptAt: ev.CreatedAt, Version: 1}
	if err := putIntent(b, s.n, in); err != nil {
		return nil, err
	}
	if err := insertEvent(b, s.n, &ev); err != nil {
		return nil, err
	}
	queueRelease(b, s.n, from, in)
	return in, nil
}
