package upload

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// hangingObjects is a bucket (a fake: this tests the service's own
// locking and timeouts) whose reads of one key hang until their context
// ends; other keys are absent. A hang ends after 20 s or at the test's
// end at the latest, so a service that ignores contexts fails instead of
// hanging the test run.
type hangingObjects struct {
	Objects // nil: calls the test does not expect panic
	hangKey string
	entered chan struct{} // one value per hung call that started
	release chan struct{}
	mu      sync.Mutex
	endedBy []error // why each hung call ended
}

func (o *hangingObjects) Name() string { return "uploads" }

func (o *hangingObjects) PresignPost(_ context.Context, p bucket.Policy) (bucket.Post, error) {
	return bucket.Post{URL: "http://127.0.0.1:1/uploads", Fields: map[string]string{"key": p.Key}}, nil
}

func (o *hangingObjects) Inspect(ctx context.Context, key string, _ int64) (bucket.Object, []byte, error) {
	if key != o.hangKey {
		return bucket.Object{}, nil, bucket.ErrNotFound
	}
	o.entered <- struct{}{}
	var err error
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case <-o.release:
		err = errors.New("released by the test")
	case <-time.After(20 * time.Second):
		err = errors.New("released by the fake's own limit")
	}
	o.mu.Lock()
	o.endedBy = append(o.endedBy, err)
	o.mu.Unlock()
	return bucket.Object{}, nil, err
}

// stripe is the old striped lock's slot of an id (FNV-1a mod 64): the
// test puts both intents in one slot, where the old code serialised them.
func stripe(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32() % 64
}

// TestHungS3CallIsolatedAndBounded: while complete on intent X hangs in
// S3, complete on intent Y (same old lock stripe) goes on; a second
// complete on X waits for X's lock only as long as its own context
// allows; the hung call is cut off by the profile's S3 timeout, answers
// storage_timeout and decides nothing.
func TestHungS3CallIsolatedAndBounded(t *testing.T) {
	db, err := store.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc := NewService(db, nil)
	key, _ := ParseKeyTemplate("test/{id}{ext}")
	objs := &hangingObjects{entered: make(chan struct{}, 4), release: make(chan struct{})}
	defer close(objs.release)
	p := &Profile{Name: "test", Objects: objs, Key: key, MaxSize: 1 << 20, Expires: 5 * time.Minute, MaxMetadata: 1024,
		Allowed: map[string]sniff.Type{"image/png": sniff.TypeOf("image/png")}, S3Timeout: 5 * time.Second}
	ctx := context.Background()
	gx, err := svc.Create(ctx, p, "", CreateRequest{ContentType: "image/png"})
	if err != nil {
		t.Fatal(err)
	}
	// An id for Y in X's old stripe.
	var y string
	for y = NewID(); stripe(y) != stripe(gx.Intent.ID); y = NewID() {
	}
	svc.NewID = func() string { return y }
	gy, err := svc.Create(ctx, p, "", CreateRequest{ContentType: "image/png"})
	if err != nil {
		t.Fatal(err)
	}
	svc.NewID = NewID
	objs.hangKey = gx.Intent.Key

	type result struct {
		in  *store.Intent
		err error
	}
	first := make(chan result, 1)
	go func() {
		in, err := svc.Complete(ctx, p, "", gx.Intent.ID, nil)
		first <- result{in, err}
	}()
	<-objs.entered // X's read now hangs, holding X's lock

	// Y proceeds: its object is simply not there yet.
	yctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := svc.Complete(yctx, p, "", gy.Intent.ID, nil); !errors.Is(err, ErrObjectMissing) {
		t.Fatalf("complete on Y while X hangs = %v, want object_missing", err)
	}
	select {
	case r := <-first:
		t.Fatalf("the hung call ended (%v) before complete on Y answered: Y waited for X", r.err)
	default:
	}

	// X again, with a 500 ms deadline: it waits for X's lock that long.
	xctx, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel2()
	start := time.Now()
	_, err = svc.Complete(xctx, p, "", gx.Intent.ID, nil)
	took := time.Since(start)
	if !errors.Is(err, ErrBusy) || !Retryable(err) {
		t.Fatalf("second complete on X = %v, want busy", err)
	}
	select {
	case r := <-first:
		t.Fatalf("the hung call ended (%v) before the second call gave up: the second call did not wait on its own deadline", r.err)
	default:
	}
	if took > 4*time.Second { // generous: only a wait ignoring the deadline takes this long
		t.Fatalf("second complete on X took %v with a 500ms deadline", took)
	}

	// The hung call is cut off by the S3 timeout: retryable, nothing decided.
	var r result
	select {
	case r = <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("the hung S3 call was never cut off")
	}
	if !errors.Is(r.err, ErrStorageTimeout) || !Retryable(r.err) {
		t.Fatalf("hung complete = %v, want storage_timeout", r.err)
	}
	objs.mu.Lock()
	ended := append([]error(nil), objs.endedBy...)
	objs.mu.Unlock()
	if len(ended) != 1 || !errors.Is(ended[0], context.DeadlineExceeded) {
		t.Fatalf("the hung read ended by %v, want the S3 timeout's deadline", ended)
	}
	if in, err := db.Get(ctx, gx.Intent.ID); err != nil || in.Status != store.StatusPending {
		t.Fatalf("X after the timeout: %+v %v", in, err)
	}
	if n := svc.Locks.held(); n != 0 {
		t.Fatalf("%d intent locks left behind", n)
	}
}

// TestLocksSerialiseOneIntent: the per-intent lock still excludes a
// second holder of the same intent, and a waiter gets it once released.
func TestLocksSerialiseOneIntent(t *testing.T) {
	var l Locks
	ctx := context.Background()
	unlock, err := l.acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := l.acquire(ctx, "b")
	if err != nil {
		t.Fatal("another intent's lock was blocked")
	}
	other()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := l.acquire(short, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second holder of a: %v", err)
	}
	got := make(chan func(), 1)
	go func() {
		u, err := l.acquire(ctx, "a")
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	unlock()
	(<-got)()
	if n := l.held(); n != 0 {
		t.Fatalf("%d locks left", n)
	}
}

// deadlineObjects records whether PresignPost was given a deadline.
type deadlineObjects struct {
	Objects
	offline  bool
	deadline bool
}

func (o *deadlineObjects) SignsOffline() bool { return o.offline }

func (o *deadlineObjects) PresignPost(ctx context.Context, _ bucket.Policy) (bucket.Post, error) {
	_, o.deadline = ctx.Deadline()
	return bucket.Post{}, nil
}

// TestPresignTimeoutOnlyWhenItCanWait: a presign that may fetch
// credentials runs under the profile's S3 timeout; one that signs with
// static keys cannot wait and runs without the timer.
func TestPresignTimeoutOnlyWhenItCanWait(t *testing.T) {
	for _, offline := range []bool{false, true} {
		o := &deadlineObjects{offline: offline}
		p := &Profile{Objects: o, S3Timeout: time.Minute}
		if _, err := p.objects().PresignPost(context.Background(), bucket.Policy{}); err != nil {
			t.Fatal(err)
		}
		if o.deadline == offline {
			t.Errorf("offline %v: presign had a deadline: %v", offline, o.deadline)
		}
	}
}
