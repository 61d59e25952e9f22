package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestBrowserClientMultipart runs the plain browser client's multipart
// path in Chromium against Caddyfile.example's files profile: the object
// is assembled from parts (a multipart ETag), verified, and an aborted
// upload ends failed.
func TestBrowserClientMultipart(t *testing.T) {
	node, harness, chromium := browserHarness(t)
	if err := s3srv.CreateBucket(context.Background(), "uploads", exampleURL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client-multipart.mjs", "--url", exampleURL, "--endpoint", "/files", "--chromium", chromium)
	cmd.Dir = harness
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("client-multipart.mjs: %v\n%s", err, stderr.String())
	}
	var out struct {
		Result struct {
			ID, Status, Key string
			Size            int64
		} `json:"result"`
		MaxProgress float64                   `json:"max_progress"`
		Aborted     struct{ Code, ID string } `json:"aborted"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("output: %v\n%s", err, stdout.String())
	}
	if out.Result.Status != "completed" || out.Result.Size != 12<<20 || out.MaxProgress != 100 {
		t.Fatalf("multipart upload: %+v", out)
	}
	head, err := s3srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("uploads"), Key: aws.String(out.Result.Key)})
	// The final object is a server-side copy of the two-part staging
	// object (promotion), so its ETag is the copy's, not a "-2" one.
	stagingGone(t, "staging/"+out.Result.Key)
	if err != nil || aws.ToInt64(head.ContentLength) != 12<<20 || strings.HasPrefix(out.Result.Key, "staging/") {
		t.Fatalf("object: %v %+v", err, head)
	}
	if out.Aborted.Code != "aborted" || out.Aborted.ID == "" {
		t.Fatalf("abort: %+v", out.Aborted)
	}
	alice := login(t, "alice")
	if st := call(t, "GET", exampleURL+"/files/"+out.Aborted.ID, nil, alice...); st.str("status") != "failed" {
		t.Fatalf("aborted upload: %s", st.Raw)
	}
}
