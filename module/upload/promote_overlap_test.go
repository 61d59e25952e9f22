package upload

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// loseAnnotations is a store whose Annotate fails, as a crash or a failed
// write loses a promotion's record while its copy lands.
type loseAnnotations struct{ store.Store }

func (loseAnnotations) Annotate(context.Context, string, store.Status, func(*store.Intent)) (*store.Intent, error) {
	return nil, errors.New("injected: the record was lost")
}

// TestPromotionRecordLostCopyNeverOutlivesIntent: the promotion's record
// is written alongside its copy; when the record is lost and the copy
// landed, the intent is still pending and decided afresh: complete again
// completes it, and an intent that ends otherwise (the client's fail, the
// sweeper's on_expiry delete) takes the copy off the final key with it.
func TestPromotionRecordLostCopyNeverOutlivesIntent(t *testing.T) {
	for _, end := range []string{"complete", "fail", "sweep delete"} {
		e := newPromotingEnv(t)
		ctx := context.Background()
		g := e.grant(t, "image/png", 0)
		post(t, g, "image/png", pngBytes)
		e.svc.Store = loseAnnotations{e.db}
		if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s: complete with the record lost: %v", end, err)
		}
		e.svc.Store = e.db
		if mid, _ := e.db.Get(ctx, g.Intent.ID); mid == nil || mid.Status != store.StatusPending || mid.Promoting {
			t.Fatalf("%s: after the lost record: %+v", end, mid)
		}
		if !bytes.Equal(getObject(t, g.Intent.Key), pngBytes) {
			t.Fatalf("%s: the copy did not land (the case under test)", end)
		}
		var in *store.Intent
		var err error
		want := store.StatusFailed
		switch end {
		case "complete":
			in, err = e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
			e.svc.Wait()
			want = store.StatusCompleted
		case "fail":
			in, err = e.svc.Fail(ctx, e.profile, "alice", g.Intent.ID, "cancelled")
		case "sweep delete":
			e.profile.OnExpiry = OnExpiryDelete
			e.pastGrace()
			in, err = e.svc.Sweep(ctx, e.profile, g.Intent.ID)
			want = store.StatusExpired
		}
		if err != nil || in.Status != want {
			t.Fatalf("%s: %+v %v", end, in, err)
		}
		if !absent(t, e.profile.Objects, g.Intent.StagingKey) {
			t.Fatalf("%s: staging object left", end)
		}
		if final := absent(t, e.profile.Objects, g.Intent.Key); final != (want != store.StatusCompleted) {
			t.Fatalf("%s: final object absent=%v for a %s intent", end, final, want)
		}
	}
}
