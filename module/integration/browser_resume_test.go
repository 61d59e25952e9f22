package integration

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestBrowserClientResumesAfterReload runs resume.mjs in Chromium against
// Caddyfile.example's files profile: a 4-part upload reloaded after its
// first part is resumed on the new page (only parts 2-4 are PUT again) and
// completes with the right object; an upload whose saved expiry passed is
// not offered and starts over.
func TestBrowserClientResumesAfterReload(t *testing.T) {
	node, harness, chromium := browserHarness(t)
	if err := s3srv.CreateBucket(context.Background(), "uploads", exampleURL); err != nil {
		t.Fatal(err)
	}
	raw := runScript(t, node, harness, "resume.mjs", "--url", exampleURL, "--endpoint", "/files", "--chromium", chromium)
	type result struct {
		ID, Status, Key string
		Size            int64
	}
	var out struct {
		First   struct{ A, B string }
		Pending []struct {
			ID        string
			PartsDone int `json:"partsDone"`
			PartCount int `json:"partCount"`
		}
		Offered  struct{ ID string }
		A, B     result
		BOffered bool `json:"b_offered"`
		Puts     []struct {
			Phase, Part int
			ID          string
		}
		Left map[string]string
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("output: %v\n%s", err, raw)
	}
	const sizeA, sizeB = 28 << 20, 12 << 20
	if out.First.A == "" || out.First.B == "" {
		t.Fatalf("first page: %s", raw)
	}
	if len(out.Pending) != 1 || out.Pending[0].ID != out.First.A || out.Pending[0].PartsDone < 1 || out.Pending[0].PartCount != 4 {
		t.Fatalf("pendingUploads after the reload: %+v", out.Pending)
	}
	if out.Offered.ID != out.First.A {
		t.Fatalf("resume offered %q, want %q", out.Offered.ID, out.First.A)
	}
	if out.A.ID != out.First.A || out.A.Status != "completed" || out.A.Size != sizeA {
		t.Fatalf("resumed upload: %+v (first id %s)", out.A, out.First.A)
	}
	if out.BOffered || out.B.ID == out.First.B || out.B.Status != "completed" || out.B.Size != sizeB {
		t.Fatalf("expired upload: offered %v, %+v (first id %s)", out.BOffered, out.B, out.First.B)
	}

	sent := func(phase int, id string) []int {
		var parts []int
		for _, p := range out.Puts {
			if p.Phase == phase && p.ID == id {
				parts = append(parts, p.Part)
			}
		}
		slices.Sort(parts)
		return parts
	}
	if got := sent(1, out.First.A); !slices.Contains(got, 1) {
		t.Fatalf("first page PUT parts %v of A, want part 1 among them", got)
	}
	if got := sent(2, out.First.A); !slices.Equal(got, []int{2, 3, 4}) {
		t.Fatalf("after the reload A's parts %v were PUT, want exactly [2 3 4]", got)
	}
	if got := sent(2, out.B.ID); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("B started over with parts %v, want [1 2]", got)
	}
	if got := sent(2, out.First.B); len(got) != 0 {
		t.Fatalf("the expired intent of B got parts %v", got)
	}

	head, err := s3srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("uploads"), Key: aws.String(out.A.Key)})
	// The final object is promotion's server-side copy of the 4-part
	// staging object: its ETag is the copy's, not a "-4" one; the parts
	// sent are counted above.
	stagingGone(t, "staging/"+out.A.Key)
	if err != nil || aws.ToInt64(head.ContentLength) != sizeA {
		t.Fatalf("resumed object: %v %+v", err, head)
	}
	alice := login(t, "alice")
	if st := call(t, "GET", exampleURL+"/files/"+out.A.ID, nil, alice...); st.str("status") != "completed" {
		t.Fatalf("resumed intent: %s", st.Raw)
	}
	for k := range out.Left {
		if strings.HasPrefix(k, "direct-upload:resume:") {
			t.Fatalf("saved state left behind after completion: %s", k)
		}
	}
}
