package upload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// Checksum tests against versitygw: the declared SHA-256 is bound into
// the grant (the store refuses other bytes) and compared at complete.

func sum256(b []byte) string { s := sha256.Sum256(b); return base64.StdEncoding.EncodeToString(s[:]) }

func (e *env) grantSum(t *testing.T, ct string, size int64, sum string) *Grant {
	t.Helper()
	g, err := e.svc.Create(context.Background(), e.profile, "alice", CreateRequest{Filename: "x", ContentType: ct, Size: size, ChecksumSHA256: sum})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestChecksumRequestChecks(t *testing.T) {
	e := newPromotingEnv(t)
	ctx := context.Background()
	good := sum256(pngBytes)
	for _, bad := range []string{"abc", strings.Repeat("A", 44), good[:43], good + "=", base64.StdEncoding.EncodeToString(make([]byte, 20)), base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xff", 32)))} {
		if _, err := e.svc.Create(ctx, e.profile, "alice", CreateRequest{ContentType: "image/png", ChecksumSHA256: bad}); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("checksum %q: %v", bad, err)
		}
	}
	e.profile.RequireChecksum = true
	if _, err := e.svc.Create(ctx, e.profile, "alice", CreateRequest{ContentType: "image/png"}); !errors.Is(err, ErrChecksumRequired) {
		t.Fatalf("required checksum missing: %v", err)
	}
	if _, err := e.svc.Create(ctx, e.profile, "alice", CreateRequest{ContentType: "image/png", ChecksumSHA256: good}); err != nil {
		t.Fatal(err)
	}
}

// TestChecksumBoundIntoPost: with and without promotion, the POST policy
// pins x-amz-checksum-sha256; versitygw refuses other bytes (400
// BadDigest) and the declared bytes complete with the checksum recorded.
func TestChecksumBoundIntoPost(t *testing.T) {
	for _, promote := range []bool{true, false} {
		e := newEnv(t, s3srv.URL)
		if promote {
			e.profile.StagingPrefix = "staging/"
		}
		ctx := context.Background()
		g := e.grantSum(t, "image/png", 0, sum256(pngBytes))
		if g.Fields["x-amz-checksum-sha256"] != sum256(pngBytes) {
			t.Fatalf("form fields %v", g.Fields)
		}
		status, body, err := testkit.PostForm(g.URL, g.Fields, "image/png", pngOf("other bytes"))
		if err != nil || status != 400 || !strings.Contains(body, "BadDigest") {
			t.Fatalf("promote=%v: other bytes: %d %v %.200s", promote, status, err, body)
		}
		if !absent(t, e.profile.Objects, UploadKey(g.Intent)) {
			t.Fatal("refused bytes landed")
		}
		post(t, g, "image/png", pngBytes)
		in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
		if err != nil || in.Status != store.StatusCompleted || in.ChecksumSHA256 != sum256(pngBytes) {
			t.Fatalf("promote=%v: complete: %+v %v", promote, in, err)
		}
		final, err := e.profile.Objects.Stat(ctx, in.Key)
		if err != nil || final.ChecksumSHA256 != sum256(pngBytes) {
			t.Fatalf("promote=%v: final object's checksum %+v %v", promote, final, err)
		}
		if evs := events(t, e.db); len(evs) != 1 || evs[0].Intent.ChecksumSHA256 != sum256(pngBytes) {
			t.Fatalf("event %+v", evs)
		}
	}
}

// TestChecksumStoreKeptNone: an object that reached the key without the
// store checking a checksum (as a store ignoring the form field would
// leave it) is rejected at complete and deleted.
func TestChecksumStoreKeptNone(t *testing.T) {
	e := newEnv(t, s3srv.URL) // promote off: the staged object's own checksum is compared
	ctx := context.Background()
	g := e.grantSum(t, "image/png", 0, sum256(pngBytes))
	if _, err := s3srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("uploads"), Key: aws.String(g.Intent.Key),
		Body: bytes.NewReader(pngBytes), ContentType: aws.String("image/png"), Metadata: map[string]string{MetaIntentID: g.Intent.ID}}); err != nil {
		t.Fatal(err)
	}
	in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	if !errors.Is(err, ErrRejected) || in.Reason != string(ReasonChecksumMismatch) || !absent(t, e.profile.Objects, in.Key) {
		t.Fatalf("complete: %+v %v", in, err)
	}
}

func TestChecksumBoundIntoPut(t *testing.T) {
	e := newPutEnv(t)
	ctx := context.Background()
	g := e.grantSum(t, "image/png", int64(len(pngBytes)), sum256(pngBytes))
	if g.Headers["X-Amz-Checksum-Sha256"] != sum256(pngBytes) || strings.Contains(strings.ToLower(g.URL), "x-amz-checksum-sha256=") ||
		!strings.Contains(g.URL, "x-amz-checksum-sha256") {
		t.Fatalf("PUT grant: %s %v", g.URL, g.Headers)
	}
	other := append([]byte(nil), pngBytes...)
	other[len(other)-1] ^= 1 // same length, type and headers: only the bytes differ
	if status, body := doPut(t, g, other, nil); status != 400 || !strings.Contains(body, "BadDigest") {
		t.Fatalf("other bytes: %d %.200s", status, body)
	}
	if status, body := doPut(t, g, pngBytes, func(r *http.Request) { r.Header.Del("X-Amz-Checksum-Sha256") }); status != 403 {
		t.Fatalf("without the checksum header: %d %.200s", status, body)
	}
	if status, body := doPut(t, g, pngBytes, nil); status != 200 {
		t.Fatalf("the exact PUT: %d %s", status, body)
	}
	in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	if err != nil || in.Status != store.StatusCompleted || in.ChecksumSHA256 != sum256(pngBytes) {
		t.Fatalf("complete: %+v %v", in, err)
	}
}

// TestChecksumMultipartComparedOnTheCopy: part URLs carry no checksum;
// the promotion's copy makes the store compute the full-object SHA-256,
// which decides. Other bytes: rejected, staging and copy deleted.
func TestChecksumMultipartComparedOnTheCopy(t *testing.T) {
	e := multipartEnv(t)
	e.profile.StagingPrefix = "staging/"
	ctx := context.Background()
	data := zipBytes(11 * mib)
	for _, declared := range [][]byte{data, append(zipBytes(11*mib-1), 1)} {
		in, err := e.svc.CreateMultipart(ctx, e.profile, "alice", CreateRequest{ContentType: "application/zip", Size: int64(len(data)), ChecksumSHA256: sum256(declared)}, false)
		if err != nil {
			t.Fatal(err)
		}
		parts := uploadParts(t, e, in, data, int(in.PartSize))
		out, err := e.svc.Complete(ctx, e.profile, "alice", in.ID, parts)
		e.svc.Wait() // the staging object is deleted after the answer
		if bytes.Equal(declared, data) {
			if err != nil || out.Status != store.StatusCompleted || !absent(t, e.profile.Objects, in.StagingKey) {
				t.Fatalf("matching checksum: %+v %v", out, err)
			}
			continue
		}
		if !errors.Is(err, ErrRejected) || out.Reason != string(ReasonChecksumMismatch) || !absent(t, e.profile.Objects, in.Key) || !absent(t, e.profile.Objects, in.StagingKey) {
			t.Fatalf("other bytes: %+v %v", out, err)
		}
	}
	e.profile.StagingPrefix = ""
	if _, err := e.svc.CreateMultipart(ctx, e.profile, "alice", CreateRequest{ContentType: "application/zip", Size: 10, ChecksumSHA256: sum256(data)}, false); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("multipart checksum without promotion: %v", err)
	}
}

// TestPartChecksumsEnforcedByStore: part URLs signed with the part's
// SHA-256 make versitygw refuse other bytes for that part (400 BadDigest)
// and a PUT without the header (403); parts asked for without a checksum
// are signed as before.
func TestPartChecksumsEnforcedByStore(t *testing.T) {
	e := multipartEnv(t)
	e.profile.StagingPrefix = "staging/"
	ctx := context.Background()
	data := zipBytes(11 * mib)
	in, err := e.svc.CreateMultipart(ctx, e.profile, "alice", CreateRequest{ContentType: "application/zip", Size: int64(len(data)), ChecksumSHA256: sum256(data)}, false)
	if err != nil {
		t.Fatal(err)
	}
	ps := int(in.PartSize)
	chunks := [][]byte{data[:ps], data[ps:]}
	for _, bad := range []map[int]string{{3: sum256(chunks[0])}, {1: "short"}, {1: ""}} {
		if _, _, err := e.svc.SignPartsChecksummed(ctx, e.profile, "alice", in.ID, []int{1, 2}, bad); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("part checksums %v: %v", bad, err)
		}
	}
	signed, _, err := e.svc.SignPartsChecksummed(ctx, e.profile, "alice", in.ID, []int{1, 2}, map[int]string{1: sum256(chunks[0]), 2: sum256(chunks[0])})
	if err != nil {
		t.Fatal(err)
	}
	if signed[0].Headers["X-Amz-Checksum-Sha256"] != sum256(chunks[0]) || strings.Contains(signed[0].URL, "X-Amz-Checksum-Sha256=") {
		t.Fatalf("signed part: %+v", signed[0])
	}
	send := func(sp SignedPart, body []byte, headers bool) (int, string, string) {
		req, _ := http.NewRequest("PUT", sp.URL, bytes.NewReader(body))
		if headers {
			for k, v := range sp.Headers {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(bytes.Buffer)
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String(), resp.Header.Get("ETag")
	}
	if st, body, _ := send(signed[1], chunks[1], true); st != 400 || !strings.Contains(body, "BadDigest") {
		t.Fatalf("part 2 with other bytes than its checksum: %d %.200s", st, body)
	}
	if st, _, _ := send(signed[0], chunks[0][:1024], false); st != 403 { // refused before the body: send little
		t.Fatalf("part 1 without its checksum header: %d", st)
	}
	st, _, etag1 := send(signed[0], chunks[0], true)
	if st != 200 {
		t.Fatalf("part 1: %d", st)
	}
	again, _, err := e.svc.SignParts(ctx, e.profile, "alice", in.ID, []int{2})
	if err != nil || len(again[0].Headers) != 0 {
		t.Fatalf("part 2 without a checksum: %+v %v", again, err)
	}
	st, _, etag2 := send(again[0], chunks[1], true)
	if st != 200 {
		t.Fatalf("part 2: %d", st)
	}
	out, err := e.svc.Complete(ctx, e.profile, "alice", in.ID, []bucket.Part{{Number: 1, ETag: etag1}, {Number: 2, ETag: etag2}})
	if err != nil || out.Status != store.StatusCompleted || out.ChecksumSHA256 != sum256(data) {
		t.Fatalf("complete: %+v %v", out, err)
	}
}
