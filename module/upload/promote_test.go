package upload

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// Promotion tests: real versitygw and Badger; fakes only wrap the real
// bucket to stop the flow at a chosen point (a crash).

func newPromotingEnv(t *testing.T) *env {
	e := newEnv(t, s3srv.URL)
	e.profile.StagingPrefix = "staging/"
	return e
}

func getObject(t *testing.T, key string) []byte {
	t.Helper()
	out, err := s3srv.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("uploads"), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func absent(t *testing.T, objs Objects, key string) bool {
	t.Helper()
	_, err := objs.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("stat %s: %v", key, err)
	}
	return errors.Is(err, bucket.ErrNotFound)
}

// pngOf is a valid PNG head followed by n distinct bytes.
func pngOf(tail string) []byte { return append(append([]byte(nil), pngBytes...), tail...) }

func TestPromotionCopiesVerifiedObjectToFinalKey(t *testing.T) {
	e := newPromotingEnv(t)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	if g.Fields["key"] != "staging/"+g.Intent.Key || g.Intent.StagingKey != g.Fields["key"] || strings.HasPrefix(g.Intent.Key, "staging/") {
		t.Fatalf("grant names %q for final key %q (staging %q)", g.Fields["key"], g.Intent.Key, g.Intent.StagingKey)
	}
	post(t, g, "image/png", pngBytes)
	if !absent(t, e.profile.Objects, g.Intent.Key) {
		t.Fatal("the form wrote the final key")
	}
	in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	e.svc.Wait() // the staging object is deleted after the answer
	if err != nil || in.Status != store.StatusCompleted || in.Key != g.Intent.Key || in.StagingKey != g.Fields["key"] || in.Promoting {
		t.Fatalf("complete: %+v %v", in, err)
	}
	if !bytes.Equal(getObject(t, in.Key), pngBytes) {
		t.Fatal("final object is not the uploaded bytes")
	}
	final, err := e.profile.Objects.Stat(ctx, in.Key)
	if err != nil || final.ETag != in.ETag || final.ContentType != "image/png" || final.Metadata[MetaIntentID] != in.ID {
		t.Fatalf("final object %+v %v, intent etag %q", final, err, in.ETag)
	}
	if !absent(t, e.profile.Objects, in.StagingKey) {
		t.Fatal("staging object left after promotion")
	}
	evs := events(t, e.db)
	if len(evs) != 1 || evs[0].Intent.Key != in.Key || evs[0].Intent.ETag != in.ETag {
		t.Fatalf("events %+v", evs)
	}
}

// TestReplayAfterPromotionNeverChangesFinal: a client that keeps posting
// its still-valid form after completion only ever writes the staging key;
// the final object keeps its verified bytes, and the re-check after
// expiry deletes the replayed staging object.
func TestReplayAfterPromotionNeverChangesFinal(t *testing.T) {
	e := newPromotingEnv(t)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Wait() // the staging object's deletion, after the answer, precedes the replays
	for _, replay := range [][]byte{pngOf("replayed"), []byte("<html><script>alert(1)</script>")} {
		post(t, g, "image/png", replay)
		if !bytes.Equal(getObject(t, in.Key), pngBytes) {
			t.Fatal("a replayed form changed the final object")
		}
		if !bytes.Equal(getObject(t, in.StagingKey), replay) {
			t.Fatal("the replay did not land at the staging key")
		}
	}
	e.pastGrace()
	out, err := e.svc.Recheck(ctx, e.profile, in.ID, false)
	if err != nil || out.Status != store.StatusCompleted || !out.Settled || out.ETag != in.ETag {
		t.Fatalf("recheck: %+v %v", out, err)
	}
	if !absent(t, e.profile.Objects, in.StagingKey) || !bytes.Equal(getObject(t, in.Key), pngBytes) {
		t.Fatal("after the re-check: staging left or final changed")
	}
	if len(events(t, e.db)) != 1 {
		t.Fatal("the replay produced an event")
	}
}

// crashAfterCopy makes the copy and then fails, as a process dying right
// after it would; replaceFirst posts other bytes to the staging key
// before the copy.
type crashAfterCopy struct {
	Objects
	crash        bool
	failStaging  bool
	replaceFirst func()
}

func (c *crashAfterCopy) Copy(ctx context.Context, src, dst, etag string, size int64, sha256 bool) (string, error) {
	if c.replaceFirst != nil {
		c.replaceFirst()
		c.replaceFirst = nil
	}
	out, err := c.Objects.Copy(ctx, src, dst, etag, size, sha256)
	if c.crash {
		return "", errors.New("injected crash after copy")
	}
	return out, err
}

func (c *crashAfterCopy) Delete(ctx context.Context, key string) error {
	if c.failStaging && strings.HasPrefix(key, "staging/") {
		return errors.New("injected crash before deleting the staging object")
	}
	return c.Objects.Delete(ctx, key)
}

// TestPromotionResumesAfterCrashBetweenCopyAndCompletion: the decision
// is on the intent before the copy; the sweeper finishes it, even when
// the staging object was replaced (by a replay) after the copy.
func TestPromotionResumesAfterCrashBetweenCopyAndCompletion(t *testing.T) {
	for _, replaced := range []bool{false, true} {
		e := newPromotingEnv(t)
		ctx := context.Background()
		g := e.grant(t, "image/png", 0)
		post(t, g, "image/png", pngBytes)
		real := e.profile.Objects
		e.profile.Objects = &crashAfterCopy{Objects: real, crash: true}
		if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrStorage) {
			t.Fatalf("crashed complete: %v", err)
		}
		mid, _ := e.db.Get(ctx, g.Intent.ID)
		if mid.Status != store.StatusPending || !mid.Promoting || mid.ETag == "" || len(events(t, e.db)) != 0 {
			t.Fatalf("after the crash: %+v", mid)
		}
		if !bytes.Equal(getObject(t, g.Intent.Key), pngBytes) {
			t.Fatal("the copy was not made before the crash")
		}
		if replaced {
			post(t, g, "image/png", pngOf("replayed after the copy"))
		}
		e.profile.Objects = real
		e.pastGrace()
		in, err := e.svc.Sweep(ctx, e.profile, g.Intent.ID)
		if err != nil || in.Status != store.StatusCompleted || in.Promoting || !in.Settled {
			t.Fatalf("replaced=%v: sweep: %+v %v", replaced, in, err)
		}
		if !bytes.Equal(getObject(t, in.Key), pngBytes) || !absent(t, real, in.StagingKey) {
			t.Fatalf("replaced=%v: final changed or staging left", replaced)
		}
		if evs := events(t, e.db); len(evs) != 1 || evs[0].Type != store.EventCompleted {
			t.Fatalf("events %+v", evs)
		}
	}
}

// TestPromotionCrashBeforeStagingDeleteIsCleanedUp: completed, but the
// staging object survived; the intent stays unsettled and the re-check
// deletes it.
func TestPromotionCrashBeforeStagingDeleteIsCleanedUp(t *testing.T) {
	e := newPromotingEnv(t)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	real := e.profile.Objects
	e.profile.Objects = &crashAfterCopy{Objects: real, failStaging: true}
	e.pastGrace() // completed after expiry: it would be settled at once
	in, err := e.svc.Sweep(ctx, e.profile, g.Intent.ID)
	if err != nil || in.Status != store.StatusCompleted || in.Settled {
		t.Fatalf("sweep: %+v %v", in, err)
	}
	if absent(t, real, in.StagingKey) {
		t.Fatal("the injected failure did not keep the staging object")
	}
	e.profile.Objects = real
	out, err := e.svc.Recheck(ctx, e.profile, in.ID, false)
	if err != nil || !out.Settled || !absent(t, real, in.StagingKey) || !bytes.Equal(getObject(t, in.Key), pngBytes) {
		t.Fatalf("recheck: %+v %v", out, err)
	}
}

// TestPromotionOfReplacedStagingIsWithdrawn: the staging object changes
// between verification and copy; the copy's condition refuses it, the
// promotion is withdrawn, and the next complete verifies the new object.
func TestPromotionOfReplacedStagingIsWithdrawn(t *testing.T) {
	e := newPromotingEnv(t)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	real := e.profile.Objects
	e.profile.Objects = &crashAfterCopy{Objects: real, replaceFirst: func() {
		post(t, g, "image/png", []byte("<html><script>x</script>"))
	}}
	if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("complete over a replaced staging object: %v", err)
	}
	if !absent(t, real, g.Intent.Key) {
		t.Fatal("unverified bytes reached the final key")
	}
	mid, _ := e.db.Get(ctx, g.Intent.ID)
	if mid.Status != store.StatusPending || mid.Promoting {
		t.Fatalf("withdrawn promotion: %+v", mid)
	}
	e.profile.Objects = real
	in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	if !errors.Is(err, ErrRejected) || in.Reason != string(ReasonContentMismatch) || !absent(t, real, in.StagingKey) || !absent(t, real, in.Key) {
		t.Fatalf("second complete: %+v %v", in, err)
	}
}

// TestCopyRefusesWrongETag: versitygw honours x-amz-copy-source-if-match,
// for CopyObject and for a multipart copy (UploadPartCopy).
func TestCopyRefusesWrongETag(t *testing.T) {
	ctx := context.Background()
	b, err := bucket.New(ctx, bucket.Config{
		Bucket: "uploads", Region: s3srv.Region, Endpoint: s3srv.URL, PathStyle: true,
		AccessKeyID: s3srv.AccessKey, SecretAccessKey: s3srv.SecretKey, CopyPartSize: 5 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{1000, 11 << 20} { // one copy; three part copies
		data := make([]byte, size)
		rand.Read(data)
		src := "copytest/src-" + NewID()
		if _, err := s3srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("uploads"), Key: aws.String(src),
			Body: bytes.NewReader(data), ContentType: aws.String("application/octet-stream"),
			Metadata: map[string]string{MetaIntentID: "x1"}}); err != nil {
			t.Fatal(err)
		}
		obj, err := b.Stat(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		dst := "copytest/dst-" + NewID()
		if _, err := b.Copy(ctx, src, dst, "0123456789abcdef0123456789abcdef", size, false); !errors.Is(err, bucket.ErrChanged) {
			t.Fatalf("size %d: copy with a wrong ETag: %v", size, err)
		}
		if _, err := b.Stat(ctx, dst); !errors.Is(err, bucket.ErrNotFound) {
			t.Fatalf("size %d: a refused copy left %s: %v", size, dst, err)
		}
		etag, err := b.Copy(ctx, src, dst, obj.ETag, size, false)
		if err != nil || etag == "" {
			t.Fatalf("size %d: copy: %q %v", size, etag, err)
		}
		got, err := b.Stat(ctx, dst)
		if err != nil || got.Metadata[MetaIntentID] != "x1" || got.ContentType != "application/octet-stream" || got.ETag != etag {
			t.Fatalf("size %d: copied object %+v %v", size, got, err)
		}
		if !bytes.Equal(getObject(t, dst), data) {
			t.Fatalf("size %d: copied bytes differ", size)
		}
	}
}
