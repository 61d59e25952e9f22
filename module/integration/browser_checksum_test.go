package integration

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"
)

// TestBrowserClientSHA256Vectors: the browser client's pure-JS
// incremental SHA-256 against known vectors and node:crypto.
func TestBrowserClientSHA256Vectors(t *testing.T) {
	node, harness, _ := browserHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "sha256-vectors.mjs")
	cmd.Dir = harness
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sha256-vectors.mjs: %v %s", err, out)
	}
	var r struct {
		Checked  int
		Failures []map[string]string
	}
	if err := json.Unmarshal(out, &r); err != nil || r.Checked < 200 || len(r.Failures) != 0 {
		t.Fatalf("%v: %s", err, out)
	}
}

// TestBrowserClientChecksum: in Chromium, the browser client with
// checksum: true hashes the file in a Worker (its progress reported apart
// from the upload's), sends checksum_sha256, and the upload completes with
// the store's SHA-256 equal to it: through a POST form (Caddyfile.example)
// and through a PUT grant (method put), whose request carries the signed
// x-amz-checksum-sha256 header.
func TestBrowserClientChecksum(t *testing.T) {
	for _, tc := range []struct{ name, site, endpoint, method string }{
		{"post", exampleURL, "/uploads", "POST"},
		{"put", extraURL, "/put", "PUT"},
	} {
		out := runClientSimple(t, tc.site, tc.endpoint, `{"checksum":true}`)
		if out.Result.Status != "completed" || out.Result.Checksum == "" {
			t.Fatalf("%s: %+v", tc.name, out.Result)
		}
		if got := sha256B64(objectBytes(t, out.Result.Key)); got != out.Result.Checksum {
			t.Fatalf("%s: the bucket's bytes hash to %s, the client declared %s", tc.name, got, out.Result.Checksum)
		}
		hp := out.HashProgress
		if len(hp) < 2 || hp[0].Loaded != 0 || hp[len(hp)-1].Percent != 100 || hp[len(hp)-1].Where != "worker" || hp[len(hp)-1].Total != out.Size {
			t.Fatalf("%s: hash progress %+v", tc.name, hp)
		}
		if last := out.Progress[len(out.Progress)-1]; last.Percent != 100 || last.Where != "" {
			t.Fatalf("%s: upload progress %+v", tc.name, out.Progress)
		}
		r := out.BucketRequests[0]
		if r.Method != tc.method || tc.method == "PUT" && r.Headers["x-amz-checksum-sha256"] != out.Result.Checksum {
			t.Fatalf("%s: bucket request %+v", tc.name, r)
		}
		if out.Rejected.Code != "upload_rejected" {
			t.Fatalf("%s: HTML named .png: %+v", tc.name, out.Rejected)
		}
	}
}

// TestBrowserClientMultipartChecksum: a 12 MiB multipart upload with
// checksum: true in Chromium; the parts carry no checksum, the promotion's
// copy makes the store compute the full-object SHA-256, which matches.
func TestBrowserClientMultipartChecksum(t *testing.T) {
	node, harness, chromium := browserHarness(t)
	if err := s3srv.CreateBucket(context.Background(), "uploads", exampleURL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client-multipart.mjs", "--url", exampleURL, "--endpoint", "/files", "--options", `{"checksum":true}`, "--chromium", chromium)
	cmd.Dir = harness
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("client-multipart.mjs: %v %s", err, raw)
	}
	var out struct {
		Result struct {
			Status, Key string
			Checksum    string `json:"checksum_sha256"`
		} `json:"result"`
		HashMax float64 `json:"hash_max_progress"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if out.Result.Status != "completed" || out.HashMax != 100 || out.Result.Checksum == "" || sha256B64(objectBytes(t, out.Result.Key)) != out.Result.Checksum {
		t.Fatalf("multipart with checksum: %s", raw)
	}
}
