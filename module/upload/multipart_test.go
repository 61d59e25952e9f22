package upload

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// Multipart tests: parts PUT to versitygw through presigned URLs, the
// upload assembled and verified like any other.

const mib = 1 << 20

func multipartEnv(t *testing.T) *env {
	e := newEnv(t, s3srv.URL)
	e.profile.MaxSize = 64 * mib
	e.profile.Allowed["application/zip"] = sniff.TypeOf("application/zip")
	return e
}

// zipBytes is n bytes that sniff as a ZIP archive.
func zipBytes(n int) []byte {
	b := bytes.Repeat([]byte{0x5a}, n)
	copy(b, "PK\x03\x04\x14\x00")
	return b
}

func putPart(t *testing.T, url string, data []byte) string {
	t.Helper()
	req, _ := http.NewRequest("PUT", url, bytes.NewReader(data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
		t.Fatalf("part upload: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	return resp.Header.Get("ETag")
}

// uploadParts signs and PUTs the parts of data and returns them.
func uploadParts(t *testing.T, e *env, in *store.Intent, data []byte, partSize int) []bucket.Part {
	t.Helper()
	var numbers []int
	for i := 0; i*partSize < len(data); i++ {
		numbers = append(numbers, i+1)
	}
	signed, _, err := e.svc.SignParts(context.Background(), e.profile, "alice", in.ID, numbers)
	if err != nil {
		t.Fatal(err)
	}
	var parts []bucket.Part
	for i, sp := range signed {
		end := min((i+1)*partSize, len(data))
		parts = append(parts, bucket.Part{Number: sp.Number, ETag: putPart(t, sp.URL, data[i*partSize:end])})
	}
	return parts
}

func noSuchUpload(t *testing.T, in *store.Intent) bool {
	_, err := s3srv.Client().ListParts(context.Background(), &s3.ListPartsInput{
		Bucket: aws.String("uploads"), Key: aws.String(in.Key), UploadId: aws.String(in.UploadID)})
	return err != nil
}

func TestMultipartCompletes(t *testing.T) {
	e := multipartEnv(t)
	ctx := context.Background()
	data := zipBytes(11 * mib)
	in, err := e.svc.CreateMultipart(ctx, e.profile, "alice", CreateRequest{Filename: "a.zip", ContentType: "application/zip", Size: int64(len(data))}, false)
	if err != nil {
		t.Fatal(err)
	}
	if in.PartSize != PartSize || in.PartCount != 2 || in.UploadID == "" {
		t.Fatalf("layout: %+v", in)
	}
	if _, _, err := e.svc.SignParts(ctx, e.profile, "alice", in.ID, []int{3}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("part beyond the declared size signed: %v", err)
	}
	parts := uploadParts(t, e, in, data, PartSize)
	listed, err := e.svc.Parts(ctx, e.profile, "alice", in.ID)
	if err != nil || len(listed) != 2 {
		t.Fatalf("parts: %v %v", listed, err)
	}
	bad := []bucket.Part{{Number: 1, ETag: parts[0].ETag}, {Number: 2, ETag: `"0000"`}}
	if _, err := e.svc.Complete(ctx, e.profile, "alice", in.ID, bad); !errors.Is(err, ErrInvalidParts) {
		t.Fatalf("wrong ETag: %v", err)
	}
	out, err := e.svc.Complete(ctx, e.profile, "alice", in.ID, parts)
	if err != nil || out.Status != store.StatusCompleted || out.ObjectSize != int64(len(data)) || out.ObjectType != "application/zip" {
		t.Fatalf("complete: %+v %v", out, err)
	}
	if again, err := e.svc.Complete(ctx, e.profile, "alice", in.ID, parts); err != nil || again.ETag != out.ETag {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	if len(events(t, e.db)) != 1 {
		t.Fatalf("events %v", eventTypes(t, e.db))
	}
}

// TestMultipartOversizeRejected: parts have no size cap, so a client can
// send more than it declared; the assembled object is measured and deleted.
func TestMultipartOversizeRejected(t *testing.T) {
	e := multipartEnv(t)
	ctx := context.Background()
	in, err := e.svc.CreateMultipart(ctx, e.profile, "alice", CreateRequest{ContentType: "application/zip", Size: 6 * mib}, false)
	if err != nil {
		t.Fatal(err)
	}
	data := zipBytes(7 * mib)
	parts := uploadParts(t, e, in, data, 8*mib)
	out, err := e.svc.Complete(ctx, e.profile, "alice", in.ID, parts)
	if !errors.Is(err, ErrRejected) || out.Reason != "too_large" {
		t.Fatalf("oversize: %+v %v", out, err)
	}
	if _, err := e.profile.Objects.Stat(ctx, in.Key); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("oversize object kept: %v", err)
	}
}

// TestMultipartWithoutSizeBoundedByMax: without a declared size (Uppy),
// the maximum bounds the parts and the real size is checked.
func TestMultipartWithoutSizeBoundedByMax(t *testing.T) {
	e := multipartEnv(t)
	e.profile.MaxSize = 10 * mib
	ctx := context.Background()
	in, err := e.svc.CreateMultipart(ctx, e.profile, "alice", CreateRequest{ContentType: "application/zip"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if in.PartCount != 2 {
		t.Fatalf("10 MiB in 5 MiB parts: %d parts", in.PartCount)
	}
	parts := uploadParts(t, e, in, zipBytes(11*mib), 6*mib) // 2 parts, 11 MiB in all
	out, err := e.svc.Complete(ctx, e.profile, "alice", in.ID, parts)
	if !errors.Is(err, ErrRejected) || out.Reason != "too_large" {
		t.Fatalf("over the maximum: %+v %v", out, err)
	}
}

func TestMultipartFailAborts(t *testing.T) {
	e := multipartEnv(t)
	ctx := context.Background()
	in, err := e.svc.CreateMultipart(ctx, e.profile, "alice", CreateRequest{ContentType: "application/zip", Size: 9 * mib}, false)
	if err != nil {
		t.Fatal(err)
	}
	uploadParts(t, e, in, zipBytes(8*mib), 8*mib)
	if _, err := e.svc.Fail(ctx, e.profile, "alice", in.ID, "cancelled"); err != nil {
		t.Fatal(err)
	}
	if !noSuchUpload(t, in) {
		t.Fatal("multipart upload not aborted")
	}
}

func TestSweepAbortsExpiredMultipart(t *testing.T) {
	e := multipartEnv(t)
	ctx := context.Background()
	in, err := e.svc.CreateMultipart(ctx, e.profile, "alice", CreateRequest{ContentType: "application/zip", Size: 9 * mib}, false)
	if err != nil {
		t.Fatal(err)
	}
	uploadParts(t, e, in, zipBytes(8*mib), 8*mib) // one part, never completed
	e.pastGrace()
	out, err := e.svc.Sweep(ctx, e.profile, in.ID)
	if !errors.Is(err, ErrExpired) || out.Status != store.StatusExpired {
		t.Fatalf("sweep: %+v %v", out, err)
	}
	if !noSuchUpload(t, in) {
		t.Fatal("expired multipart upload not aborted")
	}
}
