package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// Transitions (Update) and annotations (Annotate) are group-committed the
// way creates are: the calls that arrive while one synced write is in
// progress are written together by the next one, in one transaction, so
// 32 concurrent completes pay a few fsyncs instead of 64. There is no
// goroutine of its own: the first caller to find no write in progress
// leads, writes the waiting calls as one batch, and hands the lead to the
// first call that arrived meanwhile. Each call still returns only once
// its own intent (and, for Update, its event) is durable: the batch's
// commit is its commit.
//
// Within a batch each call reads what the calls before it wrote (a Badger
// transaction reads its own writes), so two transitions of one intent
// from the same status in one batch still have one winner: the second
// finds the status changed. A call that is refused (ErrStateChanged,
// ErrNotFound, a damaged record, its Transition's error) writes nothing
// and fails alone. A write error fails the batch, which is then retried
// one call at a time so no call fails for another's; a conflict with
// another writer (quota counters shared with creates, delivery records)
// retries the whole batch, each call deciding afresh.

// maxTransitionBatch bounds one group commit of transitions.
const maxTransitionBatch = 128

// transitionQueue holds the calls waiting for the next group commit.
type transitionQueue struct {
	mu      sync.Mutex
	waiting []*transitionReq
	leading bool // a caller is writing a batch
	// commits counts the batches written (tests).
	commits atomic.Int64
}

// transitionReq is one Update (t set) or Annotate (fn set) waiting.
type transitionReq struct {
	id   string
	from Status
	t    Transition
	fn   func(*Intent)

	out *Intent
	err error
	// wake is sent false when out and err are set, true when this call is
	// to lead the next batch.
	wake chan bool
}

// Update implements Store.
func (b *Badger) Update(_ context.Context, id string, from Status, t Transition) (*Intent, error) {
	if err := b.roomToWrite(); err != nil {
		return nil, err
	}
	return b.transit(&transitionReq{id: id, from: from, t: t})
}

// Annotate implements Store.
func (b *Badger) Annotate(_ context.Context, id string, from Status, fn func(*Intent)) (*Intent, error) {
	if err := b.roomToWrite(); err != nil {
		return nil, err
	}
	return b.transit(&transitionReq{id: id, from: from, fn: fn})
}

// transit queues r for the group commit and returns its outcome.
func (b *Badger) transit(r *transitionReq) (*Intent, error) {
	q := &b.transitions
	r.wake = make(chan bool, 1)
	q.mu.Lock()
	q.waiting = append(q.waiting, r)
	lead := !q.leading
	q.leading = true
	q.mu.Unlock()
	if !lead && !<-r.wake {
		return r.out, r.err
	}
	// Leading: r is the first waiting call (the queue was empty, or the
	// previous leader handed the lead to its first call).
	q.mu.Lock()
	n := min(len(q.waiting), maxTransitionBatch)
	batch := q.waiting[:n:n]
	q.waiting = append([]*transitionReq(nil), q.waiting[n:]...)
	q.mu.Unlock()
	b.commitTransitions(batch)
	q.commits.Add(1)
	q.mu.Lock()
	if len(q.waiting) > 0 {
		q.waiting[0].wake <- true
	} else {
		q.leading = false
	}
	q.mu.Unlock()
	for _, x := range batch {
		if x != r {
			x.wake <- false
		}
	}
	return r.out, r.err
}

// commitTransitions writes a batch in one transaction and sets each
// call's outcome.
func (b *Badger) commitTransitions(batch []*transitionReq) {
	var err error
	for try := 0; ; try++ {
		err = b.update(func(txn *badger.Txn) error {
			for _, r := range batch {
				r.out, r.err = nil, nil
				write, err := r.prepare(txn)
				if err != nil {
					r.err = err // refused: nothing of it written
					continue
				}
				if err := write(); err != nil {
					return err
				}
			}
			return nil
		})
		if !errors.Is(err, badger.ErrConflict) || try >= maxConflictRetries {
			break
		}
	}
	if err != nil && len(batch) > 1 && !errors.Is(err, badger.ErrConflict) {
		// One call's write failed the batch (too big, ...): each alone.
		for _, r := range batch {
			b.commitTransitions([]*transitionReq{r})
		}
		return
	}
	for _, r := range batch {
		if err != nil {
			r.out, r.err = nil, err
		}
		if r.err != nil {
			r.out, r.err = nil, b.noteDamaged(mapErr(r.err))
			continue
		}
		if r.t != nil {
			b.pending.Add(1) // its event is due
		}
	}
}

// prepare reads the intent and decides the call within txn, writing
// nothing; the returned write stores the decision.
func (r *transitionReq) prepare(txn *badger.Txn) (func() error, error) {
	in, err := getIntent(txn, r.id)
	if err != nil {
		return nil, err
	}
	if in.Status != r.from {
		return nil, ErrStateChanged
	}
	old := *in
	if r.fn != nil {
		r.fn(in)
		if in.Status != r.from || !in.ExpiresAt.Equal(old.ExpiresAt) || in.ID != r.id {
			return nil, fmt.Errorf("annotating intent %s changed its status, expiry or id", r.id)
		}
		return func() error {
			if err := putIntent(txn, &old, in); err != nil {
				return err
			}
			r.out = in
			return nil
		}, nil
	}
	ev, err := r.t(in)
	if err != nil {
		return nil, err
	}
	if ev.ID == "" || ev.Type == "" {
		return nil, fmt.Errorf("transition of intent %s returned no event", r.id)
	}
	in.EventID = ev.ID
	in.Events = append(in.Events, ev.ID)
	ev.Intent = *in
	ev.Intent.Events = nil
	ev.Delivery = Delivery{State: DeliveryPending, NextAttemptAt: ev.CreatedAt, Version: 1}
	evVal, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encoding event: %w", err)
	}
	return func() error {
		if err := putIntent(txn, &old, in); err != nil {
			return err
		}
		if err := releaseQuota(txn, &old, in); err != nil {
			return err
		}
		if err := txn.Set(outboxKey(ev.ID), evVal); err != nil {
			return err
		}
		if err := txn.Set(dueKey(in.Profile, ev.CreatedAt, ev.ID), nil); err != nil {
			return err
		}
		if err := txn.Set(createdKey(ev.CreatedAt, ev.ID), nil); err != nil {
			return err
		}
		r.out = in
		return nil
	}, nil
}
