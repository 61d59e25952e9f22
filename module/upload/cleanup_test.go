package upload

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// holdStagingDelete blocks the deletion of staging objects until release
// is closed, and reports each one started on started.
type holdStagingDelete struct {
	Objects
	started chan string
	release chan struct{}
}

func (h *holdStagingDelete) Delete(ctx context.Context, key string) error {
	if strings.HasPrefix(key, "staging/") {
		h.started <- key
		<-h.release
	}
	return h.Objects.Delete(ctx, key)
}

// TestCompleteAnswersBeforeStagingDelete: a client's complete is answered
// once the completion is durable and the final object in place, while
// the staging object's deletion still runs; the deletion then happens,
// and the intent stays unsettled until the re-check (nothing is lost if
// the process stops first).
func TestCompleteAnswersBeforeStagingDelete(t *testing.T) {
	e := newPromotingEnv(t)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	real := e.profile.Objects
	hold := &holdStagingDelete{Objects: real, started: make(chan string, 1), release: make(chan struct{})}
	e.profile.Objects = hold
	type result struct {
		in  *store.Intent
		err error
	}
	done := make(chan result, 1)
	go func() {
		in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
		done <- result{in, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		close(hold.release)
		t.Fatal("complete waited for the staging object's deletion")
	}
	if r.err != nil || r.in.Status != store.StatusCompleted || r.in.Settled {
		t.Fatalf("complete: %+v %v", r.in, r.err)
	}
	if stored, err := e.db.Get(ctx, g.Intent.ID); err != nil || stored.Status != store.StatusCompleted || len(events(t, e.db)) != 1 {
		t.Fatalf("answered before the completion was stored: %+v %v", stored, err)
	}
	if !bytes.Equal(getObject(t, r.in.Key), pngBytes) {
		t.Fatal("answered before the final object was in place")
	}
	select {
	case key := <-hold.started:
		if key != r.in.StagingKey {
			t.Fatalf("deleting %s", key)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the staging object's deletion never started")
	}
	if absent(t, real, r.in.StagingKey) {
		t.Fatal("staging object gone while its deletion was held")
	}
	close(hold.release)
	e.svc.Wait()
	if !absent(t, real, r.in.StagingKey) {
		t.Fatal("staging object left after the deletion ran")
	}
}

// TestCompleteStagingDeleteFailsRecheckCleans: when the deletion after
// the answer fails (or never runs), the completed intent stays unsettled
// and the re-check after expiry deletes the staging object.
func TestCompleteStagingDeleteFailsRecheckCleans(t *testing.T) {
	e := newPromotingEnv(t)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	real := e.profile.Objects
	e.profile.Objects = &crashAfterCopy{Objects: real, failStaging: true}
	in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	e.svc.Wait()
	if err != nil || in.Status != store.StatusCompleted || in.Settled || absent(t, real, in.StagingKey) {
		t.Fatalf("complete: %+v %v", in, err)
	}
	e.profile.Objects = real
	e.pastGrace()
	out, err := e.svc.Recheck(ctx, e.profile, in.ID, false)
	if err != nil || !out.Settled || !absent(t, real, in.StagingKey) || !bytes.Equal(getObject(t, in.Key), pngBytes) {
		t.Fatalf("recheck: %+v %v", out, err)
	}
	if evs := events(t, e.db); len(evs) != 1 || evs[0].Type != store.EventCompleted {
		t.Fatalf("events %+v", evs)
	}
}
