package store

import (
	"context"
	"errors"
)

// UpdateBatch implements Store: the items are written a group of up to
// maxTransitionBatch per transaction, by the batch writer of Update's
// group commit (commitTransitions, badger_update.go), so a group costs one
// synced write instead of one per item. Each item reads what the items
// before it in its group wrote, is refused alone (writing nothing), and a
// group whose write fails is retried one item at a time.
func (b *Badger) UpdateBatch(_ context.Context, ups []BatchUpdate) error {
	if err := b.roomToWrite(); err != nil {
		for i := range ups {
			ups[i].Out, ups[i].Err = nil, err
		}
		return err
	}
	reqs := make([]transitionReq, len(ups))
	batch := make([]*transitionReq, len(ups))
	for i, u := range ups {
		reqs[i] = transitionReq{id: u.ID, from: u.From, t: u.T}
		batch[i] = &reqs[i]
	}
	for start := 0; start < len(batch); start += maxTransitionBatch {
		b.commitTransitions(batch[start:min(start+maxTransitionBatch, len(batch))])
	}
	var first error
	for i := range ups {
		ups[i].Out, ups[i].Err = reqs[i].out, reqs[i].err
		if err := reqs[i].err; first == nil && (errors.Is(err, ErrClosed) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrFull)) {
			first = err
		}
	}
	return first
}
