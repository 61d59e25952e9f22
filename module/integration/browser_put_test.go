package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// clientRun is what client-simple.mjs prints.
type clientRun struct {
	Result struct {
		ID, Status, Key, ETag string
		Size                  int64
		Checksum              string `json:"checksum_sha256"`
	} `json:"result"`
	Progress       []clientProgress              `json:"progress"`
	HashProgress   []clientProgress              `json:"hash_progress"`
	Rejected       struct{ Code, Reason string } `json:"rejected"`
	Size           int64                         `json:"size"`
	BucketRequests []struct {
		Method, Path string
		Headers      map[string]string
	} `json:"bucket_requests"`
}

type clientProgress struct {
	Loaded, Total int64
	Percent       float64
	Where         string
}

// runClientSimple runs client-simple.mjs on site against endpoint with the
// upload options opts (JSON).
func runClientSimple(t *testing.T, site, endpoint, opts string) clientRun {
	t.Helper()
	node, harness, chromium := browserHarness(t)
	if err := s3srv.CreateBucket(context.Background(), "uploads", site); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client-simple.mjs", "--url", site, "--endpoint", endpoint, "--options", opts, "--chromium", chromium)
	cmd.Dir = harness
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("client-simple.mjs: %v\n%s", err, stderr.String())
	}
	var out clientRun
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("output: %v\n%s", err, stdout.String())
	}
	return out
}

// TestBrowserClientPut: the plain browser client in Chromium follows a
// PUT grant (method put): one PUT of the bare file to the staging key with
// the signed headers, verified, promoted to the final key; HTML named .png
// is PUT too (the signature cannot see bytes) and rejected by verification.
func TestBrowserClientPut(t *testing.T) {
	out := runClientSimple(t, extraURL, "/put", "{}")
	if out.Result.Status != "completed" || !strings.HasPrefix(out.Result.Key, "put/") || out.Result.Size != out.Size {
		t.Fatalf("PUT upload: %+v", out.Result)
	}
	stagingGone(t, "staging/"+out.Result.Key)
	if !bytes.Equal(objectBytes(t, out.Result.Key)[:8], []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatal("final object is not the PNG")
	}
	if len(out.BucketRequests) != 2 {
		t.Fatalf("bucket requests: %+v", out.BucketRequests)
	}
	r := out.BucketRequests[0]
	if r.Method != "PUT" || r.Path != "/uploads/staging/"+out.Result.Key || r.Headers["content-type"] != "image/png" || r.Headers["x-amz-meta-intent-id"] != out.Result.ID {
		t.Fatalf("the PNG's bucket request: %+v", r)
	}
	if out.Rejected.Code != "upload_rejected" || out.Rejected.Reason != "content_mismatch" || out.BucketRequests[1].Method != "PUT" {
		t.Fatalf("HTML named .png: %+v, %+v", out.Rejected, out.BucketRequests[1])
	}
	if last := out.Progress[len(out.Progress)-1]; last.Percent != 100 {
		t.Fatalf("progress: %+v", out.Progress)
	}
}
