package upload

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// slowRead is the real bucket whose reads and deletes take d of the
// service's clock: the clock moves while the S3 call runs.
type slowRead struct {
	Objects
	e *env
	d time.Duration
}

func (o slowRead) Inspect(ctx context.Context, key string, n int64) (bucket.Object, []byte, error) {
	obj, head, err := o.Objects.Inspect(ctx, key, n)
	o.e.advance(o.d)
	return obj, head, err
}

func (o slowRead) Delete(ctx context.Context, key string) error {
	err := o.Objects.Delete(ctx, key)
	o.e.advance(o.d)
	return err
}

// justBeforeSettle moves the clock to 100 ms before the intent's settle
// time, and makes its S3 calls take 200 ms.
func justBeforeSettle(e *env, in *store.Intent) {
	e.advance(e.svc.settleAfter(in).Sub(e.clock()) - 100*time.Millisecond)
	e.profile.Objects = slowRead{Objects: e.profile.Objects, e: e, d: 200 * time.Millisecond}
}

// TestCompleteReadBeforeSettleTimeIsNotSettled: an object read 100 ms
// before the settle time could still be overwritten after the read, so
// the completed intent must stay unsettled (the sweeper re-checks it),
// however late the answer came.
func TestCompleteReadBeforeSettleTimeIsNotSettled(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	justBeforeSettle(e, g.Intent)
	in, err := e.svc.Complete(context.Background(), e.profile, "alice", g.Intent.ID, nil)
	if err != nil || in.Status != store.StatusCompleted {
		t.Fatalf("complete: %+v %v", in, err)
	}
	if !e.clock().After(e.svc.settleAfter(in)) {
		t.Fatal("the clock did not pass the settle time during the read")
	}
	if in.Settled {
		t.Fatal("settled from the time after the read; an overwrite during the read would never be re-checked")
	}
	// A read that starts after the settle time settles it.
	e.pastGrace()
	if in, err = e.svc.Recheck(context.Background(), e.profile, in.ID, false); err != nil || !in.Settled {
		t.Fatalf("recheck: %+v %v", in, err)
	}
}

// TestFailDeleteBeforeSettleTimeIsNotSettled: the same for fail, whose
// deletion could be followed by an upload still in flight (an orphan the
// re-check must find).
func TestFailDeleteBeforeSettleTimeIsNotSettled(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	g := e.grant(t, "text/plain", 0)
	justBeforeSettle(e, g.Intent)
	in, err := e.svc.Fail(context.Background(), e.profile, "alice", g.Intent.ID, "gave up")
	if err != nil || in.Status != store.StatusFailed {
		t.Fatalf("fail: %+v %v", in, err)
	}
	if in.Settled {
		t.Fatal("failed intent settled from the time after the delete; a later orphan would never be deleted")
	}
}

// TestExpiryJudgedFromReadStart: an object missing when a read started
// before the settle time may still arrive; it is not declared expired
// because the answer came after the settle time.
func TestExpiryJudgedFromReadStart(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	g := e.grant(t, "image/png", 0)
	justBeforeSettle(e, g.Intent)
	if _, err := e.svc.Complete(context.Background(), e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrObjectMissing) {
		t.Fatalf("complete = %v, want object_missing (the read started before the settle time)", err)
	}
}
