package integration

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

func pngFile(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	img.Set(1, 1, color.RGBA{255, 0, 0, 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func objectExists(t testing.TB, key string) bool {
	t.Helper()
	_, err := s3srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("uploads"), Key: aws.String(key)})
	if err == nil {
		return true
	}
	var nf *types.NotFound
	if errors.As(err, &nf) || strings.Contains(err.Error(), "404") {
		return false
	}
	t.Fatalf("head %s: %v", key, err)
	return false
}

// grant asks the example for an upload as user.
func grant(t testing.TB, auth []string, body map[string]any) response {
	t.Helper()
	r := call(t, "POST", exampleURL+"/uploads", body, auth...)
	if r.Status != 201 {
		t.Fatalf("grant: %d %s", r.Status, r.Raw)
	}
	return r
}

func uploadForm(t testing.TB, g response, ct string, data []byte) (int, string) {
	t.Helper()
	status, body, err := testkit.PostForm(g.str("url"), g.fields(), ct, data)
	if err != nil {
		t.Fatal(err)
	}
	return status, body
}

// TestFiveSteps walks the flow of the product through Caddyfile.example:
// forward_auth login, grant, form POST to S3, complete, status.
func TestFiveSteps(t *testing.T) {
	alice := login(t, "alice")
	img := pngFile(t)
	g := grant(t, alice, map[string]any{"filename": "../../cat.png", "content_type": "image/png", "size": len(img), "metadata": map[string]any{"album": "holidays"}})
	id, key := g.str("id"), g.str("key")
	if !strings.HasPrefix(key, "images/") || !strings.HasSuffix(key, "/"+id+".png") || strings.Contains(key, "cat") {
		t.Fatalf("key %q is not server-chosen from the template", key)
	}
	if g.str("method") != "POST" || g.str("bucket") != "uploads" || g.Body["max_size"].(float64) != float64(len(img)) || g.str("expires_at") == "" {
		t.Fatalf("grant body: %s", g.Raw)
	}
	if g.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("grant is cacheable: %q", g.Header.Get("Cache-Control"))
	}
	if status, body := uploadForm(t, g, "image/png", img); status != 201 {
		t.Fatalf("S3 refused a valid upload: %d %s", status, body)
	}
	r := call(t, "POST", exampleURL+"/uploads/"+id+"/complete", nil, alice...)
	if r.Status != 200 || r.str("status") != "completed" || r.str("key") != key || r.str("content_type") != "image/png" ||
		r.Body["size"].(float64) != float64(len(img)) || r.str("etag") == "" || r.str("id") != id {
		t.Fatalf("complete: %d %s", r.Status, r.Raw)
	}
	again := call(t, "POST", exampleURL+"/uploads/"+id+"/complete", nil, alice...)
	if again.Status != 200 || again.str("etag") != r.str("etag") {
		t.Fatalf("repeated complete: %d %s", again.Status, again.Raw)
	}
	st := call(t, "GET", exampleURL+"/uploads/"+id, nil, alice...)
	if st.Status != 200 || st.str("status") != "completed" || st.str("filename") != "cat.png" {
		t.Fatalf("status: %d %s", st.Status, st.Raw)
	}
	if meta, _ := st.Body["metadata"].(map[string]any); meta["album"] != "holidays" {
		t.Fatalf("metadata lost: %s", st.Raw)
	}
	if !objectExists(t, key) {
		t.Fatal("completed object is not in the bucket")
	}
}

// TestS3EnforcesThePolicy: the bucket itself refuses every deviation from
// the granted form, so a client cannot upload what was not permitted.
func TestS3EnforcesThePolicy(t *testing.T) {
	alice := login(t, "alice")
	img := pngFile(t)
	cases := []struct {
		name   string
		change func(f map[string]string) (ct string, data []byte)
	}{
		{"wrong content type", func(f map[string]string) (string, []byte) {
			f["Content-Type"] = "image/svg+xml"
			return "image/svg+xml", img
		}},
		{"larger than declared", func(f map[string]string) (string, []byte) {
			return "image/png", append(append([]byte{}, img...), 0)
		}},
		{"tampered signature", func(f map[string]string) (string, []byte) {
			s := []byte(f["X-Amz-Signature"])
			s[0] ^= 1
			f["X-Amz-Signature"] = string(s)
			return "image/png", img
		}},
		{"another key", func(f map[string]string) (string, []byte) {
			f["key"] = "images/someone-elses-file.png"
			return "image/png", img
		}},
		{"unlisted field", func(f map[string]string) (string, []byte) {
			f["x-amz-meta-owner"] = "mallory"
			return "image/png", img
		}},
		{"other intent id", func(f map[string]string) (string, []byte) {
			f["x-amz-meta-intent-id"] = "01aaaaaaaaaaaaaaaaaaaaaaaa"
			return "image/png", img
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := grant(t, alice, map[string]any{"content_type": "image/png", "size": len(img)})
			f := g.fields()
			ct, data := tc.change(f)
			status, body, err := testkit.PostForm(g.str("url"), f, ct, data)
			if err != nil {
				t.Fatal(err)
			}
			if status < 400 {
				t.Fatalf("S3 accepted it: %d %s", status, body)
			}
			if objectExists(t, g.str("key")) || objectExists(t, "images/someone-elses-file.png") {
				t.Fatal("an object was written")
			}
		})
	}
}

func TestOversizeWithoutDeclaredSize(t *testing.T) {
	u := []string{"X-Test-User", "carol"}
	g := call(t, "POST", extraURL+"/small", map[string]any{"content_type": "text/plain"}, u...)
	if g.Status != 201 || g.Body["max_size"].(float64) != 1024 {
		t.Fatalf("grant: %d %s", g.Status, g.Raw)
	}
	status, body := uploadForm(t, g, "text/plain", bytes.Repeat([]byte("a"), 1025))
	if status < 400 || !strings.Contains(body, "EntityTooLarge") {
		t.Fatalf("S3 accepted 1025 bytes under a 1 KiB policy: %d %s", status, body)
	}
	if status, body := uploadForm(t, g, "text/plain", bytes.Repeat([]byte("a"), 1024)); status != 201 {
		t.Fatalf("S3 refused 1024 bytes: %d %s", status, body)
	}
	r := call(t, "POST", extraURL+"/small/"+g.str("id")+"/complete", nil, u...)
	if r.Status != 200 || r.str("status") != "completed" {
		t.Fatalf("complete: %d %s", r.Status, r.Raw)
	}
	if !strings.HasPrefix(g.str("key"), "small/carol/") {
		t.Fatalf("key %q does not follow the template", g.str("key"))
	}
	head, err := s3srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("uploads"), Key: aws.String(g.str("key"))})
	if err != nil || aws.ToString(head.ContentDisposition) != "attachment" {
		t.Fatalf("content disposition not pinned: %v %v", err, head)
	}
}

func TestExpiredPolicyRefusedByS3(t *testing.T) {
	u := []string{"X-Test-User", "carol"}
	g := call(t, "POST", extraURL+"/small", map[string]any{"content_type": "text/plain"}, u...)
	if g.Status != 201 {
		t.Fatalf("grant: %d %s", g.Status, g.Raw)
	}
	waitPast(t, g.str("expires_at"))
	status, body := uploadForm(t, g, "text/plain", []byte("late"))
	if status < 400 {
		t.Fatalf("S3 accepted an expired policy: %d %s", status, body)
	}
}

// TestDisguisedHTMLRejected: HTML declared as PNG passes the policy (the
// type field matches) but not the sniffing at completion.
func TestDisguisedHTMLRejected(t *testing.T) {
	alice := login(t, "alice")
	g := grant(t, alice, map[string]any{"content_type": "image/png"})
	evil := []byte("<html><body><script>fetch('/steal?c='+document.cookie)</script></body></html>")
	if status, body := uploadForm(t, g, "image/png", evil); status != 201 {
		t.Fatalf("upload: %d %s", status, body)
	}
	for i := 0; i < 2; i++ {
		r := call(t, "POST", exampleURL+"/uploads/"+g.str("id")+"/complete", nil, alice...)
		expect(t, r, 422, "upload_rejected")
		if r.str("status") != "rejected" || r.str("reason") != "content_mismatch" {
			t.Fatalf("rejection body: %s", r.Raw)
		}
	}
	if objectExists(t, g.str("key")) {
		t.Fatal("rejected object is still in the bucket")
	}
}

func TestFailDeletes(t *testing.T) {
	alice := login(t, "alice")
	img := pngFile(t)
	g := grant(t, alice, map[string]any{"content_type": "image/png"})
	uploadForm(t, g, "image/png", img)
	// Promotion is on by default: the form writes the staging key only.
	if g.fields()["key"] != g.str("staging_key") || g.str("staging_key") != "staging/"+g.str("key") || !objectExists(t, g.str("staging_key")) {
		t.Fatalf("upload did not land at the staging key: %s", g.Raw)
	}
	for i := 0; i < 2; i++ {
		r := call(t, "POST", exampleURL+"/uploads/"+g.str("id")+"/fail", map[string]string{"reason": "user cancelled"}, alice...)
		if r.Status != 200 || r.str("status") != "failed" {
			t.Fatalf("fail #%d: %d %s", i, r.Status, r.Raw)
		}
	}
	if objectExists(t, g.str("staging_key")) || objectExists(t, g.str("key")) {
		t.Fatal("fail left the object")
	}
	expect(t, call(t, "POST", exampleURL+"/uploads/"+g.str("id")+"/complete", nil, alice...), 409, "intent_finalized")
}

func TestCompleteBeforeUpload(t *testing.T) {
	alice := login(t, "alice")
	g := grant(t, alice, map[string]any{"content_type": "image/png"})
	expect(t, call(t, "POST", exampleURL+"/uploads/"+g.str("id")+"/complete", nil, alice...), 409, "object_missing")
	// The client retries once the upload is done.
	uploadForm(t, g, "image/png", pngFile(t))
	if r := call(t, "POST", exampleURL+"/uploads/"+g.str("id")+"/complete", nil, alice...); r.Status != 200 {
		t.Fatalf("retry: %d %s", r.Status, r.Raw)
	}
}

// TestIdentities: forward_auth decides who asks; a forged header is
// stripped; another user's intent does not exist for you.
func TestIdentities(t *testing.T) {
	alice, bob := login(t, "alice"), login(t, "bob")
	g := grant(t, alice, map[string]any{"content_type": "image/png"})
	id := g.str("id")
	expect(t, call(t, "GET", exampleURL+"/uploads/"+id, nil, bob...), 404, "not_found")
	expect(t, call(t, "POST", exampleURL+"/uploads/"+id+"/complete", nil, bob...), 404, "not_found")
	expect(t, call(t, "POST", exampleURL+"/uploads/"+id+"/fail", nil, bob...), 404, "not_found")
	if r := call(t, "GET", exampleURL+"/uploads/"+id, nil, alice...); r.Status != 200 || r.str("status") != "pending" {
		t.Fatalf("owner: %d %s", r.Status, r.Raw)
	}
	// No session: the backend's 401 comes back through forward_auth.
	if r := call(t, "POST", exampleURL+"/uploads", map[string]any{"content_type": "image/png"}); r.Status != 401 {
		t.Fatalf("no login: %d %s", r.Status, r.Raw)
	}
	// A client-sent identity header alone gets nowhere.
	if r := call(t, "GET", exampleURL+"/uploads/"+id, nil, "X-User-Id", "alice"); r.Status != 401 {
		t.Fatalf("forged X-User-Id: %d %s", r.Status, r.Raw)
	}
	// Bob's forged header does not make him alice.
	forged := append(append([]string{}, bob...), "X-User-Id", "alice")
	expect(t, call(t, "GET", exampleURL+"/uploads/"+id, nil, forged...), 404, "not_found")
	// Without forward_auth in front, an empty identity is 401 from the handler.
	expect(t, call(t, "POST", extraURL+"/docs", map[string]any{"content_type": "text/plain"}), 401, "unauthenticated")
}

// TestProfilesAreSeparate: an intent of one profile is not reachable
// through another profile's routes.
func TestProfilesAreSeparate(t *testing.T) {
	u := []string{"X-Test-User", "carol"}
	g := call(t, "POST", extraURL+"/docs", map[string]any{"content_type": "application/pdf"}, u...)
	if g.Status != 201 || !strings.HasPrefix(g.str("key"), "docs/") || !strings.HasSuffix(g.str("key"), ".pdf") {
		t.Fatalf("docs grant: %d %s", g.Status, g.Raw)
	}
	expect(t, call(t, "GET", extraURL+"/small/"+g.str("id"), nil, u...), 404, "not_found")
	expect(t, call(t, "POST", extraURL+"/small", map[string]any{"content_type": "application/pdf"}, u...), 422, "type_not_allowed")
}
