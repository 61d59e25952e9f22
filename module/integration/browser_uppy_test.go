package integration

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// uppyRun is what uppy.mjs prints.
type uppyRun struct {
	Outcomes []uppyOutcome `json:"outcomes"`
	Uppy     []struct {
		Name           string    `json:"name"`
		Type           string    `json:"type"`
		Size           int64     `json:"size"`
		Error          string    `json:"error"`
		UploadComplete bool      `json:"upload_complete"`
		Checksum       string    `json:"checksum"`
		HashProgress   []float64 `json:"hash_progress"`
	} `json:"uppy"`
	Requests []uppyRequest `json:"requests"`
}

// uppyOutcome is one row of #uppy-results.
type uppyOutcome struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Status    string `json:"status"`
	Key       string `json:"key"`
	Multipart bool   `json:"multipart"`
	Parts     int    `json:"parts"`
	Detail    string `json:"detail"`
	Text      string `json:"text"`
}

// uppyRequest is one request of the page to the site (under /files) or to
// the bucket.
type uppyRequest struct {
	Method string `json:"method"`
	Host   string `json:"host"` // "site" or "bucket"
	Path   string `json:"path"`
	Part   int    `json:"part"`
	Status int    `json:"status"`
	// Of Uppy's grant requests (s3/params, s3/multipart): the filename and
	// the checksum Uppy sent; of params, the grant's key and checksum field.
	Filename      string `json:"filename"`
	Checksum      string `json:"checksum"`
	GrantKey      string `json:"grant_key"`
	GrantChecksum string `json:"grant_checksum"`
}

func (r uppyRequest) String() string {
	s := fmt.Sprintf("%s %s %s", r.Method, r.Host, r.Path)
	if r.Filename != "" {
		s += fmt.Sprintf(" (%s, checksum %q, grant key %q, grant checksum %q)", r.Filename, r.Checksum, r.GrantKey, r.GrantChecksum)
	}
	if r.Part > 0 {
		s += fmt.Sprintf(" part %d", r.Part)
	}
	return fmt.Sprintf("%s → %d", s, r.Status)
}

// multipartETag is the ETag S3 gives an object assembled from N parts.
var multipartETag = regexp.MustCompile(`^"?[0-9a-f]{32}-(\d+)"?$`)

// TestBrowserUppy drives a real Chromium through the demo page's Uppy tab:
// Uppy's Dashboard with @uppy/aws-s3 pointed at the /files profile of
// Caddyfile.example (companionEndpoint), so Uppy talks to the sidecar's
// Companion-compatible S3 routes. In one batch it uploads
//
//   - a small PNG: a simple upload (GET /files/s3/params, the form POST to
//     the bucket), then the page's POST /files/{id}/complete: completed;
//   - a 12 MiB ZIP: multipart (POST /files/s3/multipart, three presigned part
//     PUTs, POST /files/s3/multipart/{id}/complete, which verifies it):
//     completed, and the object's ETag is a multipart one ("-3");
//   - HTML named .png: a simple upload the verification rejects; its object
//     is deleted;
//   - 11 MiB of HTML named .zip: multipart, rejected at Uppy's complete;
//   - a PNG whose declared checksum is wrong (--tamper: a pre-processor
//     after the page's replaces it): the bucket refuses the POST.
//
// Every file goes with its SHA-256: the page's pre-processor (the bundle's
// addChecksumPreProcessor, the browser client's incremental SHA-256) hashes
// it, Uppy sends it as metadata[checksum_sha256], the sidecar binds it into
// the grant. The checksums are compared with Go's: in Uppy's file meta, in
// the requests, in the grant's form field, in the intent, in the complete
// answer the page shows, and in the bucket (HeadObject, checksum mode).
//
// It needs Chromium and the harness's npm packages, as TestBrowserUploads.
func TestBrowserUppy(t *testing.T) {
	root := testkit.RepoRoot()
	node, harness, chromium := browserHarness(t)

	ctx := context.Background()
	// The page posts forms and PUTs parts to the bucket from its own origin;
	// Uppy reads each part's ETag, which CORS must expose.
	if err := s3srv.CreateBucket(ctx, "uploads", exampleURL); err != nil {
		t.Fatal(err)
	}

	files := t.TempDir()
	small := gradientPNG(t, 120, 80)
	writeFile(t, filepath.Join(files, "photo.png"), small)
	big := bigZip(t, 12<<20)
	writeFile(t, filepath.Join(files, "archive.zip"), big)
	writeFile(t, filepath.Join(files, "disguised.png"), []byte("<!doctype html><html><body><script>alert(1)</script></body></html>\n"))
	fake := append([]byte("<!doctype html><html><body><script>alert(1)</script><pre>\n"), bytes.Repeat([]byte("not a zip\n"), 11<<20/10)...)
	writeFile(t, filepath.Join(files, "fake.zip"), fake)
	tampered := gradientPNG(t, 64, 48)
	writeFile(t, filepath.Join(files, "tampered.png"), tampered)

	artifacts := filepath.Join(root, "testdata", "artifacts")
	shot := filepath.Join(artifacts, "uppy-after-uploads.png")
	_ = os.Remove(shot)
	before := bucketKeys(t)

	out := runScript(t, node, harness, "uppy.mjs", "--url", exampleURL, "--files", files, "--artifacts", artifacts, "--chromium", chromium,
		"--tamper", "tampered.png")
	var run uppyRun
	if err := json.Unmarshal(out, &run); err != nil {
		t.Fatalf("uppy.mjs output is not the JSON run: %v\n%s", err, out)
	}
	byName := map[string]uppyOutcome{}
	for _, o := range run.Outcomes {
		byName[o.Name] = o
		t.Logf("%-13s state=%q status=%q key=%q multipart=%v parts=%d detail=%q", o.Name, o.State, o.Status, o.Key, o.Multipart, o.Parts, o.Detail)
	}
	for _, f := range run.Uppy {
		t.Logf("uppy file %-13s type=%q size=%d upload_complete=%v error=%q", f.Name, f.Type, f.Size, f.UploadComplete, f.Error)
	}
	for _, r := range run.Requests {
		t.Logf("request %s", r)
	}
	if len(byName) != 5 {
		t.Fatalf("want 5 rows in #uppy-results, got %d: %s", len(byName), out)
	}
	auth := login(t, "alice") // the page logged in as alice too

	// (a) a small PNG: a simple upload, completed by the page's /complete.
	photo := byName["photo.png"]
	if photo.State != "completed" || !strings.Contains(photo.Text, "completed") || !strings.Contains(photo.Text, photo.Key) ||
		!strings.HasPrefix(photo.Key, "files/") || !strings.HasSuffix(photo.Key, ".png") || photo.Multipart {
		t.Errorf("photo.png: want completed, a files/…png key, no multipart: %+v", photo)
	}
	if !strings.Contains(photo.Detail, "image/png") {
		t.Errorf("photo.png: the detail should show the verified type: %q", photo.Detail)
	}
	if d := sha256.Sum256(small); !strings.Contains(photo.Detail, "SHA-256 "+base64.StdEncoding.EncodeToString(d[:])) {
		t.Errorf("photo.png: the detail should show complete's checksum_sha256, the file's SHA-256: %q", photo.Detail)
	}
	if photo.Key != "" {
		head, err := s3srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("uploads"), Key: aws.String(photo.Key)})
		if err != nil {
			t.Errorf("photo.png: %s is not in the bucket: %v", photo.Key, err)
		} else {
			if aws.ToInt64(head.ContentLength) != int64(len(small)) || aws.ToString(head.ContentType) != "image/png" ||
				aws.ToString(head.ContentDisposition) != "attachment" {
				t.Errorf("photo.png in the bucket: %d bytes of %q (%q), want %d bytes of image/png, attachment",
					aws.ToInt64(head.ContentLength), aws.ToString(head.ContentType), aws.ToString(head.ContentDisposition), len(small))
			}
			if multipartETag.MatchString(aws.ToString(head.ETag)) {
				t.Errorf("photo.png: ETag %s is a multipart one; want a simple upload", aws.ToString(head.ETag))
			}
		}
		id := intentOfKey(photo.Key)
		if r := call(t, "GET", exampleURL+"/files/"+id, nil, auth...); r.Status != 200 || r.str("status") != "completed" {
			t.Errorf("photo.png: intent %s: %d %s, want completed", id, r.Status, r.Raw)
		}
		wantRequests(t, "photo.png", run.Requests,
			uppyRequest{Method: "GET", Host: "site", Path: "/files/s3/params", Status: 200},
			uppyRequest{Method: "POST", Host: "bucket", Path: "/uploads", Status: 201},
			uppyRequest{Method: "POST", Host: "site", Path: "/files/" + id + "/complete", Status: 200},
		)
	}

	// (b) a 12 MiB ZIP: multipart in three parts, verified by Uppy's complete.
	arc := byName["archive.zip"]
	if arc.State != "completed" || !strings.Contains(arc.Text, "completed") || !strings.Contains(arc.Text, arc.Key) ||
		!strings.HasPrefix(arc.Key, "files/") || !strings.HasSuffix(arc.Key, ".zip") || !arc.Multipart || arc.Parts != 3 {
		t.Errorf("archive.zip: want completed, a files/…zip key, multipart in 3 parts: %+v", arc)
	}
	if arc.Key != "" {
		head, err := s3srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("uploads"), Key: aws.String(arc.Key)})
		if err != nil {
			t.Errorf("archive.zip: %s is not in the bucket: %v", arc.Key, err)
		} else {
			// The final object is the server-side copy of the staging
			// object (promotion): its ETag is the copy's, so the three
			// parts show in the requests below, not in the ETag.
			stagingGone(t, "staging/"+arc.Key)
			if aws.ToInt64(head.ContentLength) != int64(len(big)) || aws.ToString(head.ContentType) != "application/zip" {
				t.Errorf("archive.zip in the bucket: %d bytes of %q, want %d bytes of application/zip",
					aws.ToInt64(head.ContentLength), aws.ToString(head.ContentType), len(big))
			}
		}
		id := intentOfKey(arc.Key)
		if r := call(t, "GET", exampleURL+"/files/"+id, nil, auth...); r.Status != 200 || r.str("status") != "completed" {
			t.Errorf("archive.zip: intent %s: %d %s, want completed", id, r.Status, r.Raw)
		}
		want := []uppyRequest{{Method: "POST", Host: "site", Path: "/files/s3/multipart", Status: 200}}
		for n := 1; n <= 3; n++ {
			want = append(want,
				uppyRequest{Method: "GET", Host: "site", Path: fmt.Sprintf("/files/s3/multipart/%s/%d", id, n), Status: 200},
				uppyRequest{Method: "PUT", Host: "bucket", Path: "/uploads/staging/" + arc.Key, Part: n, Status: 200})
		}
		want = append(want, uppyRequest{Method: "POST", Host: "site", Path: "/files/s3/multipart/" + id + "/complete", Status: 200})
		wantRequests(t, "archive.zip", run.Requests, want...)
	}

	// (c) HTML named .png: uploaded, then rejected and deleted.
	bad := byName["disguised.png"]
	if bad.State == "completed" || strings.Contains(bad.Status, "completed") || !strings.HasPrefix(bad.Status, "error: ") ||
		!strings.Contains(bad.Text, "content_mismatch") {
		t.Errorf("disguised.png: want error: … (content_mismatch): %+v", bad)
	}
	if bad.Key != "" {
		if objectExists(t, bad.Key) {
			t.Errorf("disguised.png: %s is still in the bucket", bad.Key)
		}
		id := intentOfKey(bad.Key)
		if r := call(t, "GET", exampleURL+"/files/"+id, nil, auth...); r.Status != 200 || r.str("status") != "rejected" {
			t.Errorf("disguised.png: intent %s: %d %s, want rejected", id, r.Status, r.Raw)
		}
	}
	// (d) 11 MiB of HTML named .zip: multipart, rejected by the verification
	// in /files/s3/multipart/{id}/complete (422), its object deleted.
	fz := byName["fake.zip"]
	if fz.State == "completed" || !strings.HasPrefix(fz.Status, "error: ") || !strings.Contains(fz.Text, "content_mismatch") ||
		!fz.Multipart || fz.Parts != 3 || !strings.HasPrefix(fz.Key, "files/") {
		t.Errorf("fake.zip: want a multipart upload ending in error: … (content_mismatch): %+v", fz)
	}
	if fz.Key != "" {
		if objectExists(t, fz.Key) {
			t.Errorf("fake.zip: %s is still in the bucket", fz.Key)
		}
		id := intentOfKey(fz.Key)
		if r := call(t, "GET", exampleURL+"/files/"+id, nil, auth...); r.Status != 200 || r.str("status") != "rejected" {
			t.Errorf("fake.zip: intent %s: %d %s, want rejected", id, r.Status, r.Raw)
		}
		wantRequests(t, "fake.zip", run.Requests,
			uppyRequest{Method: "PUT", Host: "bucket", Path: "/uploads/staging/" + fz.Key, Part: 3, Status: 200},
			uppyRequest{Method: "POST", Host: "site", Path: "/files/s3/multipart/" + id + "/complete", Status: 422},
		)
	}

	// (e) the checksums: hashed in the page, sent, bound, kept.
	uppyChecksums(t, run, map[string][]byte{"photo.png": small, "archive.zip": big}, photo.Key, arc.Key)

	// (f) a PNG whose declared checksum is wrong: the bucket refuses the
	// POST, nothing is stored, the intent is not completed.
	tam := byName["tampered.png"]
	if tam.State == "completed" || !strings.HasPrefix(tam.Status, "error: ") {
		t.Errorf("tampered.png: want error: …: %+v", tam)
	}
	var tamGrant *uppyRequest
	tamAt := 0
	for i, r := range run.Requests {
		if r.Path == "/files/s3/params" && r.Filename == "tampered.png" {
			tamGrant, tamAt = &run.Requests[i], i
		}
	}
	if tamGrant == nil {
		t.Errorf("tampered.png: no GET /files/s3/params for it")
	} else {
		if tamGrant.Checksum != emptySHA256 || tamGrant.GrantChecksum != emptySHA256 {
			t.Errorf("tampered.png: Uppy sent checksum %q, the grant binds %q; want the tampered %q in both",
				tamGrant.Checksum, tamGrant.GrantChecksum, emptySHA256)
		}
		id := intentOfKey(tamGrant.GrantKey)
		if r := call(t, "GET", exampleURL+"/files/"+id, nil, auth...); r.Status != 200 || r.str("status") == "completed" || r.str("checksum_sha256") != emptySHA256 {
			t.Errorf("tampered.png: intent %s: %d %s, want not completed, with the declared checksum", id, r.Status, r.Raw)
		}
		if objectExists(t, tamGrant.GrantKey) {
			t.Errorf("tampered.png: %s is in the bucket; the store should have refused it", tamGrant.GrantKey)
		}
		// The POST after the tampered grant was refused by the bucket (400
		// BadDigest); the requests of other files may come between.
		refused := false
		for _, r := range run.Requests[tamAt:] {
			if r.Method == "POST" && r.Host == "bucket" && r.Status == 400 {
				refused = true
				break
			}
		}
		if !refused {
			t.Errorf("tampered.png: the bucket never answered a POST with 400")
		}
	}

	for _, f := range run.Uppy {
		if (f.Name == "disguised.png" || f.Name == "fake.zip") && !strings.Contains(f.Error, "content_mismatch") {
			t.Errorf("%s: Uppy's Dashboard should show it as failed, with the reason: %+v", f.Name, f)
		}
		if f.Name == "tampered.png" && (f.Error == "" || f.UploadComplete) {
			t.Errorf("%s: Uppy's Dashboard should show it as failed: %+v", f.Name, f)
		}
		if f.Name != "disguised.png" && f.Name != "fake.zip" && f.Name != "tampered.png" && (f.Error != "" || !f.UploadComplete) {
			t.Errorf("%s: Uppy should show it as uploaded: %+v", f.Name, f)
		}
	}

	// Only the PNG and the ZIP were left in the bucket.
	var added []string
	for _, k := range bucketKeys(t) {
		if !slices.Contains(before, k) {
			added = append(added, k)
		}
	}
	slices.Sort(added)
	want := []string{arc.Key, photo.Key}
	slices.Sort(want)
	if !slices.Equal(added, want) {
		t.Errorf("objects added to the bucket: %q, want only %q", added, want)
	}

	// The screenshot is a real PNG.
	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil || cfg.Width < 100 || cfg.Height < 100 {
		t.Fatalf("screenshot %s is not a usable PNG (%d bytes): %v %+v", shot, len(data), err, cfg)
	}
	t.Logf("screenshot: %s (%dx%d)", shot, cfg.Width, cfg.Height)
}

// emptySHA256 is the SHA-256 of zero bytes, base64: what uppy.mjs --tamper
// declares.
const emptySHA256 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

// uppyChecksums checks that Uppy uploaded each file of files with its
// SHA-256 (computed here): the page's pre-processor put it in the file's
// meta (reporting progress up to 1), Uppy sent it with its grant request,
// a POST grant binds it as a form field, and the completed intent, the
// page's complete answer (for a simple upload) and the bucket's object
// (HeadObject with checksum mode) carry it. photoKey and arcKey are the
// final keys of photo.png (simple) and archive.zip (multipart).
func uppyChecksums(t *testing.T, run uppyRun, files map[string][]byte, photoKey, arcKey string) {
	t.Helper()
	ctx := context.Background()
	auth := login(t, "alice")
	keys := map[string]string{"photo.png": photoKey, "archive.zip": arcKey}
	for name, data := range files {
		d := sha256.Sum256(data)
		want := base64.StdEncoding.EncodeToString(d[:])
		for _, f := range run.Uppy {
			if f.Name != name {
				continue
			}
			if f.Checksum != want {
				t.Errorf("%s: file.meta.checksum_sha256 is %q, want %q (Go's SHA-256)", name, f.Checksum, want)
			}
			if n := len(f.HashProgress); n == 0 || f.HashProgress[n-1] != 1 || (len(data) > 8<<20 && n < 3) {
				t.Errorf("%s: hashing progress %v: want values ending at 1 (several for a %d-byte file)", name, f.HashProgress, len(data))
			}
		}
		sent := false
		for _, r := range run.Requests {
			if r.Filename != name || r.Status != 200 {
				continue
			}
			sent = sent || r.Checksum == want
			if r.Path == "/files/s3/params" && r.GrantChecksum != want {
				t.Errorf("%s: the grant's x-amz-checksum-sha256 field is %q, want %q", name, r.GrantChecksum, want)
			}
		}
		if !sent {
			t.Errorf("%s: Uppy's grant request did not carry metadata[checksum_sha256]=%s", name, want)
		}
		key := keys[name]
		if key == "" {
			continue
		}
		id := intentOfKey(key)
		if r := call(t, "GET", exampleURL+"/files/"+id, nil, auth...); r.Status != 200 || r.str("status") != "completed" || r.str("checksum_sha256") != want {
			t.Errorf("%s: intent %s: %d %s, want completed with checksum_sha256 %s", name, id, r.Status, r.Raw, want)
		}
		head, err := s3srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("uploads"), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Errorf("%s: HeadObject %s: %v", name, key, err)
		} else if got := aws.ToString(head.ChecksumSHA256); got != want {
			t.Errorf("%s: the bucket's SHA-256 of %s is %q, want %q", name, key, got, want)
		}
	}
}

// wantRequests checks that the page made the requests want, in this order
// (others may come between them).
func wantRequests(t *testing.T, name string, got []uppyRequest, want ...uppyRequest) {
	t.Helper()
	i := 0
	for _, r := range got {
		if i < len(want) && r.Method == want[i].Method && r.Host == want[i].Host && r.Path == want[i].Path &&
			r.Part == want[i].Part && r.Status == want[i].Status {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("%s: the page never made %s (after %d of the expected requests)", name, want[i], i)
	}
}

// intentOfKey is the intent id in a key such as files/2026/11/28/{id}.zip.
func intentOfKey(key string) string {
	base := path.Base(key)
	if i := strings.IndexByte(base, '.'); i > 0 {
		return base[:i]
	}
	return base
}

// bigZip is a real ZIP of at least minSize bytes: a short text file and a
// stored (uncompressed) entry of random bytes.
func bigZip(t *testing.T, minSize int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create("README.txt")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w, "Random bytes for the Uppy multipart upload test.")
	w, err = zw.CreateHeader(&zip.FileHeader{Name: "data.bin", Method: zip.Store})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	chunk := make([]byte, 64<<10)
	for written := 0; written < minSize; written += len(chunk) {
		for i := range chunk {
			chunk[i] = byte(r.Uint32())
		}
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
