package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// queuedTransitions is how many calls wait for the next group commit.
func (b *Badger) queuedTransitions() int {
	b.transitions.mu.Lock()
	defer b.transitions.mu.Unlock()
	return len(b.transitions.waiting)
}

// holdLead starts an Annotate of intent id whose fn blocks until release
// is closed: its call leads a batch, so the calls made meanwhile queue
// for the next one. It returns the channel of that call's error.
func holdLead(t *testing.T, db *Badger, id string) (release chan struct{}, done chan error) {
	t.Helper()
	release, done, entered := make(chan struct{}), make(chan error, 1), make(chan struct{})
	go func() {
		_, err := db.Annotate(context.Background(), id, StatusPending, func(in *Intent) {
			close(entered)
			<-release
			in.Detail = "held"
		})
		done <- err
	}()
	<-entered
	return release, done
}

// waitQueued waits, bounded, until n calls wait for the next commit.
func waitQueued(t *testing.T, db *Badger, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for db.queuedTransitions() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", db.queuedTransitions(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTransitionsGroupCommit: transitions that arrive while a synced write
// is in progress are written by one transaction, each answered with its
// own outcome and event.
func TestTransitionsGroupCommit(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	ctx := context.Background()
	exp := time.Unix(1000, 0).UTC()
	const n = 40
	for i := range n + 1 {
		if err := db.Create(ctx, pending(fmt.Sprintf("g%02d", i), exp)); err != nil {
			t.Fatal(err)
		}
	}
	before := db.transitions.commits.Load()
	release, held := holdLead(t, db, "g40")
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = db.Update(ctx, fmt.Sprintf("g%02d", i), StatusPending, complete(fmt.Sprintf("e%02d", i)))
		})
	}
	waitQueued(t, db, n)
	close(release)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if got := db.transitions.commits.Load() - before; got != 2 {
		t.Fatalf("%d commits for one held call and %d queued transitions, want 2", got, n)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("update %d: %v", i, errs[i])
		}
		in, err := db.Get(ctx, fmt.Sprintf("g%02d", i))
		if err != nil || in.Status != StatusCompleted || in.EventID != fmt.Sprintf("e%02d", i) {
			t.Fatalf("intent %d after the batch: %+v %v", i, in, err)
		}
		if ev, err := db.Event(ctx, in.EventID); err != nil || ev.Intent.ID != in.ID {
			t.Fatalf("event of %d: %+v %v", i, ev, err)
		}
	}
	if in, _ := db.Get(ctx, "g40"); in == nil || in.Detail != "held" {
		t.Fatalf("held annotation not written: %+v", in)
	}
}

// TestTransitionsBatchOneWinnerAndIsolation: in one batch, transitions of
// one intent from the same status have one winner, and a refused call
// (its Transition's error, an unknown id, a status changed) writes
// nothing and fails alone.
func TestTransitionsBatchOneWinnerAndIsolation(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	ctx := context.Background()
	exp := time.Unix(1000, 0).UTC()
	for _, id := range []string{"hold", "same", "bad", "ok"} {
		if err := db.Create(ctx, pending(id, exp)); err != nil {
			t.Fatal(err)
		}
	}
	release, held := holdLead(t, db, "hold")
	var wg sync.WaitGroup
	const same = 10
	sameErrs := make([]error, same)
	for i := range same {
		wg.Go(func() {
			_, sameErrs[i] = db.Update(ctx, "same", StatusPending, complete(fmt.Sprintf("same-%d", i)))
		})
	}
	boom := errors.New("boom")
	var badErr, unknownErr, okErr error
	wg.Go(func() {
		_, badErr = db.Update(ctx, "bad", StatusPending, func(in *Intent) (Event, error) {
			in.Status = StatusFailed
			return Event{}, boom
		})
	})
	wg.Go(func() { _, unknownErr = db.Update(ctx, "nope", StatusPending, complete("nope-e")) })
	wg.Go(func() { _, okErr = db.Update(ctx, "ok", StatusPending, complete("ok-e")) })
	waitQueued(t, db, same+3)
	close(release)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	var winners []string
	for i, err := range sameErrs {
		switch {
		case err == nil:
			winners = append(winners, fmt.Sprintf("same-%d", i))
		case !errors.Is(err, ErrStateChanged):
			t.Fatalf("update %d of one intent: %v", i, err)
		}
	}
	got, err := db.Get(ctx, "same")
	if len(winners) != 1 || err != nil || len(got.Events) != 1 || got.Events[0] != winners[0] {
		t.Fatalf("winners %v, intent %+v %v", winners, got, err)
	}
	if !errors.Is(badErr, boom) || !errors.Is(unknownErr, ErrNotFound) || okErr != nil {
		t.Fatalf("bad %v, unknown %v, ok %v", badErr, unknownErr, okErr)
	}
	if in, _ := db.Get(ctx, "bad"); in == nil || in.Status != StatusPending || len(in.Events) != 0 {
		t.Fatalf("refused transition wrote: %+v", in)
	}
	evs, err := db.Events(ctx, "", "", 100)
	if err != nil || len(evs) != 2 {
		t.Fatalf("%d events (%v), want the winner's and ok's", len(evs), err)
	}
}
