package integration

import (
	"archive/zip"
	"bytes"
	"context"
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

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// uppyRun is what uppy.mjs prints.
type uppyRun struct {
	Outcomes []uppyOutcome `json:"outcomes"`
	Uppy     []struct {
		Name           string `json:"name"`
		Type           string `json:"type"`
		Size           int64  `json:"size"`
		Error          string `json:"error"`
		UploadComplete bool   `json:"upload_complete"`
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
}

func (r uppyRequest) String() string {
	s := fmt.Sprintf("%s %s %s", r.Method, r.Host, r.Path)
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
//     is deleted.
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

	artifacts := filepath.Join(root, "testdata", "artifacts")
	shot := filepath.Join(artifacts, "uppy-after-uploads.png")
	_ = os.Remove(shot)
	before := bucketKeys(t)

	out := runScript(t, node, harness, "uppy.mjs", "--url", exampleURL, "--files", files, "--artifacts", artifacts, "--chromium", chromium)
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
	if len(byName) != 4 {
		t.Fatalf("want 4 rows in #uppy-results, got %d: %s", len(byName), out)
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
			if objectExists(t, "staging/"+arc.Key) {
				t.Errorf("archive.zip: the staging object staging/%s is left", arc.Key)
			}
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

	for _, f := range run.Uppy {
		if (f.Name == "disguised.png" || f.Name == "fake.zip") && !strings.Contains(f.Error, "content_mismatch") {
			t.Errorf("%s: Uppy's Dashboard should show it as failed, with the reason: %+v", f.Name, f)
		}
		if f.Name != "disguised.png" && f.Name != "fake.zip" && (f.Error != "" || !f.UploadComplete) {
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

// wantRequests checks that the page made the requests want, in this order
// (others may come between them).
func wantRequests(t *testing.T, name string, got []uppyRequest, want ...uppyRequest) {
	t.Helper()
	i := 0
	for _, r := range got {
		if i < len(want) && r == want[i] {
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
