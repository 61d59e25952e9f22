package upload

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// These tests run the service against a real versitygw (signatures and
// POST policies checked) and a real Badger on disk.

var s3srv *testkit.Versity

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "upload-test-*")
	if err != nil {
		panic(err)
	}
	s3srv, err = testkit.StartVersity(dir+"/s3", 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "versitygw is required (make tools):", err)
		os.Exit(1)
	}
	if err := s3srv.CreateBucket(context.Background(), "uploads"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	s3srv.Stop(5 * time.Second)
	os.RemoveAll(dir)
	os.Exit(code)
}

type env struct {
	svc     *Service
	db      *store.Badger
	profile *Profile
	now     time.Time
	mu      sync.Mutex
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

func newEnv(t *testing.T, endpoint string) *env {
	t.Helper()
	db, err := store.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	objs, err := bucket.New(context.Background(), bucket.Config{
		Bucket: "uploads", Region: s3srv.Region, Endpoint: endpoint, PathStyle: true,
		AccessKeyID: s3srv.AccessKey, SecretAccessKey: s3srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ParseKeyTemplate("test/{id}{ext}")
	e := &env{db: db, now: time.Now().UTC()}
	e.svc = NewService(db, nil)
	e.svc.Now = e.clock
	e.profile = &Profile{
		Name: "test", Objects: objs, Key: key, MaxSize: 1 << 20, Expires: 5 * time.Minute, MaxMetadata: 1024,
		Allowed: map[string]sniff.Type{"image/png": sniff.TypeOf("image/png"), "text/plain": sniff.TypeOf("text/plain")},
	}
	return e
}

var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde")

func (e *env) grant(t *testing.T, ct string, size int64) *Grant {
	t.Helper()
	g, err := e.svc.Create(context.Background(), e.profile, "alice", CreateRequest{Filename: "x", ContentType: ct, Size: size})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func post(t *testing.T, g *Grant, ct string, data []byte) {
	t.Helper()
	status, body, err := testkit.PostForm(g.URL, g.Fields, ct, data)
	if err != nil || status != 201 {
		t.Fatalf("upload: %d %v %s", status, err, body)
	}
}

func events(t *testing.T, db *store.Badger) []store.Event {
	t.Helper()
	evs, err := db.Events(context.Background(), "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestCompleteValidUpload(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	g := e.grant(t, "image/png", int64(len(pngBytes)))
	if got, _ := e.db.Get(ctx, g.Intent.ID); got == nil || got.Status != store.StatusPending {
		t.Fatal("intent not stored before the grant was returned")
	}
	post(t, g, "image/png", pngBytes)
	in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if in.Status != store.StatusCompleted || in.ObjectSize != int64(len(pngBytes)) || in.ObjectType != "image/png" || in.ETag == "" {
		t.Fatalf("completed intent = %+v", in)
	}
	again, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	if err != nil || again.ETag != in.ETag {
		t.Fatalf("repeat: %v %+v", err, again)
	}
	evs := events(t, e.db)
	if len(evs) != 1 || evs[0].Type != store.EventCompleted || evs[0].Intent.ID != in.ID {
		t.Fatalf("events = %+v", evs)
	}
	if _, err := e.svc.Complete(ctx, e.profile, "bob", g.Intent.ID, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other identity: %v", err)
	}
}

func TestCompleteRejectsDisguisedHTML(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", []byte("<html><script>alert(document.cookie)</script></html>"))
	in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	if !errors.Is(err, ErrRejected) || in == nil || in.Status != store.StatusRejected || in.Reason != "content_mismatch" {
		t.Fatalf("got %+v, %v", in, err)
	}
	if _, err := e.profile.Objects.Stat(ctx, g.Intent.Key); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("rejected object still in bucket: %v", err)
	}
	if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrRejected) {
		t.Fatalf("repeat: %v", err)
	}
	if evs := events(t, e.db); len(evs) != 1 || evs[0].Type != store.EventRejected {
		t.Fatalf("events = %+v", evs)
	}
}

func TestCompleteBeforeUploadThenExpiry(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrObjectMissing) {
		t.Fatalf("before upload: %v", err)
	}
	if evs := events(t, e.db); len(evs) != 0 {
		t.Fatalf("object_missing wrote events: %+v", evs)
	}
	// Within the grace after expiry the upload may still land.
	e.advance(e.profile.Expires + e.svc.Grace/2)
	if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrObjectMissing) {
		t.Fatalf("within grace: %v", err)
	}
	e.advance(e.svc.Grace)
	if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrExpired) {
		t.Fatalf("after grace: %v", err)
	}
	if evs := events(t, e.db); len(evs) != 1 || evs[0].Type != store.EventExpired {
		t.Fatalf("events = %+v", evs)
	}
}

func TestCompleteAfterExpiryStillVerifies(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	e.advance(time.Hour)
	in, err := e.svc.Complete(context.Background(), e.profile, "alice", g.Intent.ID, nil)
	if err != nil || in.Status != store.StatusCompleted {
		t.Fatalf("an upload that arrived in time was lost: %+v %v", in, err)
	}
}

func TestFailDeletesAndIsIdempotent(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	g := e.grant(t, "text/plain", 0)
	post(t, g, "text/plain", []byte("hello"))
	for i := 0; i < 2; i++ {
		in, err := e.svc.Fail(ctx, e.profile, "alice", g.Intent.ID, "network\r\ndown")
		if err != nil || in.Status != store.StatusFailed || in.Detail != "network  down" {
			t.Fatalf("fail #%d: %+v %v", i, in, err)
		}
	}
	if _, err := e.profile.Objects.Stat(ctx, g.Intent.Key); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("object survived fail: %v", err)
	}
	if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrFinalized) {
		t.Fatalf("complete after fail: %v", err)
	}
	if evs := events(t, e.db); len(evs) != 1 || evs[0].Type != store.EventFailed {
		t.Fatalf("events = %+v", evs)
	}
}

func TestConcurrentCompletesOneTransition(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	var wg sync.WaitGroup
	etags := make([]string, 8)
	for i := range etags {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, err := e.svc.Complete(context.Background(), e.profile, "alice", g.Intent.ID, nil)
			if err != nil {
				t.Error(err)
				return
			}
			etags[i] = in.ETag
		}()
	}
	wg.Wait()
	for _, et := range etags {
		if et != etags[0] || et == "" {
			t.Fatalf("different outcomes: %v", etags)
		}
	}
	if evs := events(t, e.db); len(evs) != 1 {
		t.Fatalf("%d events for one upload", len(evs))
	}
}

// TestS3DownDecidesNothing points the profile at a port where nothing
// listens: complete and fail must leave the intent pending, eventless.
func TestS3DownDecidesNothing(t *testing.T) {
	port, _ := testkit.FreePort()
	e := newEnv(t, fmt.Sprintf("http://127.0.0.1:%d", port))
	ctx := context.Background()
	g := e.grant(t, "image/png", 0) // minting needs no network
	e.advance(time.Hour)            // even past expiry nothing is decided on an error
	if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrStorage) {
		t.Fatalf("complete: %v", err)
	}
	if _, err := e.svc.Fail(ctx, e.profile, "alice", g.Intent.ID, ""); !errors.Is(err, ErrStorage) {
		t.Fatalf("fail: %v", err)
	}
	in, _ := e.db.Get(ctx, g.Intent.ID)
	if in.Status != store.StatusPending || len(events(t, e.db)) != 0 {
		t.Fatalf("decided on an error: %+v", in)
	}
}

func TestCreateValidation(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	for _, tc := range []struct {
		req  CreateRequest
		want *Error
	}{
		{CreateRequest{ContentType: "image/svg+xml"}, ErrTypeNotAllowed},
		{CreateRequest{ContentType: "text/html"}, ErrTypeNotAllowed},
		{CreateRequest{ContentType: ""}, ErrInvalidRequest},
		{CreateRequest{ContentType: "image/png", Size: 2 << 20}, ErrTooLarge},
		{CreateRequest{ContentType: "image/png", Size: -1}, ErrInvalidRequest},
		{CreateRequest{ContentType: "image/png", Filename: "a\x00b"}, ErrInvalidFilename},
		{CreateRequest{ContentType: "image/png", Metadata: []byte(`"str"`)}, ErrInvalidMetadata},
		{CreateRequest{ContentType: "image/png", Metadata: []byte(`{"k":"` + strings.Repeat("v", 2000) + `"}`)}, ErrMetadataTooLarge},
	} {
		if _, err := e.svc.Create(ctx, e.profile, "alice", tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%+v: err %v, want %s", tc.req, err, tc.want.Code)
		}
	}
	if _, _, err := e.db.List(ctx, store.ByExpiry, time.Now().Add(time.Hour), nil, 10); err != nil {
		t.Fatal(err)
	}
	if l, _, _ := e.db.List(ctx, store.ByExpiry, time.Now().Add(time.Hour), nil, 10); len(l) != 0 {
		t.Fatalf("refused requests created %d intents", len(l))
	}
}

// failingDelete is the real bucket with a Delete that fails, to stop a
// rejection between its decision and its side effect.
type failingDelete struct{ Objects }

func (failingDelete) Delete(context.Context, string) error {
	return errors.New("injected delete failure")
}

// TestRejectionSurvivesInterruption: the verdict is recorded before the
// object is deleted, so a rejection interrupted after the deletion (a
// crash) still ends as rejected, not as a missing object.
func TestRejectionSurvivesInterruption(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", []byte("<svg onload=alert(1)>"))
	real := e.profile.Objects
	e.profile.Objects = failingDelete{real}
	if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrStorage) {
		t.Fatalf("interrupted rejection: %v", err)
	}
	in, _ := e.db.Get(ctx, g.Intent.ID)
	if in.Status != store.StatusPending || in.Reason != "content_mismatch" || len(events(t, e.db)) != 0 {
		t.Fatalf("after interruption: %+v", in)
	}
	// The process died after deleting the object.
	if err := real.Delete(ctx, g.Intent.Key); err != nil {
		t.Fatal(err)
	}
	e.profile.Objects = real
	out, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	if !errors.Is(err, ErrRejected) || out.Status != store.StatusRejected || out.Reason != "content_mismatch" || out.ETag == "" {
		t.Fatalf("resumed rejection: %+v, %v", out, err)
	}
	if evs := events(t, e.db); len(evs) != 1 || evs[0].Type != store.EventRejected {
		t.Fatalf("events = %+v", evs)
	}
}

// TestMissingBucketDecidesNothing: a bucket that does not exist (a wrong
// name or endpoint) is an S3 error, not a missing object.
func TestMissingBucketDecidesNothing(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	objs, err := bucket.New(context.Background(), bucket.Config{
		Bucket: "no-such-bucket", Region: s3srv.Region, Endpoint: s3srv.URL, PathStyle: true,
		AccessKeyID: s3srv.AccessKey, SecretAccessKey: s3srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.profile.Objects = objs
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	e.pastGrace()
	if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrStorage) {
		t.Fatalf("complete: %v", err)
	}
	if _, err := e.svc.Sweep(ctx, e.profile, g.Intent.ID); !Retryable(err) {
		t.Fatalf("sweep: %v", err)
	}
	in, _ := e.db.Get(ctx, g.Intent.ID)
	if in.Status != store.StatusPending || len(events(t, e.db)) != 0 {
		t.Fatalf("decided on a missing bucket: %+v", in)
	}
}

// TestFailAfterDecidedRejectionEndsRejected: fail cannot turn a rejection
// already decided into a client-reported failure.
func TestFailAfterDecidedRejectionEndsRejected(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", []byte("<html>x</html>"))
	real := e.profile.Objects
	e.profile.Objects = failingDelete{real}
	if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrStorage) {
		t.Fatalf("interrupted rejection: %v", err)
	}
	e.profile.Objects = real
	out, err := e.svc.Fail(ctx, e.profile, "alice", g.Intent.ID, "gave up")
	if !errors.Is(err, ErrFinalized) || out.Status != store.StatusRejected || out.Reason != "content_mismatch" {
		t.Fatalf("fail: %+v %v", out, err)
	}
}

// TestGrantExpiryIsThePolicys: the expires_at a client is told, the
// intent's and the policy's are one instant, a whole second, and never
// sooner than the configured expiry (S3 reads the policy's to the second).
func TestGrantExpiryIsThePolicys(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	e.mu.Lock()
	e.now = time.Date(2026, 11, 28, 12, 0, 0, 900_000_000, time.UTC)
	e.mu.Unlock()
	g := e.grant(t, "image/png", 0)
	raw, _ := base64.StdEncoding.DecodeString(g.Fields["policy"])
	var doc struct {
		Expiration time.Time `json:"expiration"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 11, 28, 12, 5, 1, 0, time.UTC)
	if !g.Intent.ExpiresAt.Equal(want) || !doc.Expiration.Equal(want) {
		t.Fatalf("intent %v, policy %v, want %v", g.Intent.ExpiresAt, doc.Expiration, want)
	}
}
