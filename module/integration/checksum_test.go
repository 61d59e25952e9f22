package integration

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

func sha256B64(b []byte) string {
	s := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(s[:])
}

// TestChecksumThroughCaddy: a profile with require_checksum, through the
// real Caddy binary and versitygw: no checksum, no grant; other bytes are
// refused by the store; the declared bytes complete, and complete's answer
// and the webhook carry the checksum.
func TestChecksumThroughCaddy(t *testing.T) {
	rc := newHookReceiver(t)
	h := newHooksWith(t, rc.srv.URL, strings.Replace(hooksCaddyfile, "allowed_types image/png", "allowed_types image/png\n\t\trequire_checksum", 1))
	img := pngFile(t)
	expect(t, call(t, "POST", h.url, map[string]any{"content_type": "image/png"}, carol...), 400, "checksum_required")
	expect(t, call(t, "POST", h.url, map[string]any{"content_type": "image/png", "checksum_sha256": "not base64"}, carol...), 400, "invalid_request")
	g := call(t, "POST", h.url, map[string]any{"content_type": "image/png", "checksum_sha256": sha256B64(img)}, carol...)
	if g.Status != 201 || g.fields()["x-amz-checksum-sha256"] != sha256B64(img) {
		t.Fatalf("grant: %d %s", g.Status, g.Raw)
	}
	other := append(pngFile(t), 'x')
	status, body, err := testkit.PostForm(g.str("url"), g.fields(), "image/png", other)
	if err != nil || status != 400 || !strings.Contains(body, "BadDigest") {
		t.Fatalf("other bytes: %d %v %.200s", status, err, body)
	}
	if status, body := uploadForm(t, g, "image/png", img); status != 201 {
		t.Fatalf("the declared bytes: %d %s", status, body)
	}
	done := call(t, "POST", h.url+"/"+g.str("id")+"/complete", nil, carol...)
	if done.Status != 200 || done.str("status") != "completed" || done.str("checksum_sha256") != sha256B64(img) {
		t.Fatalf("complete: %d %s", done.Status, done.Raw)
	}
	waitFor(t, "the completed webhook", 15*time.Second, func() bool {
		for _, d := range rc.deliveries() {
			if d.IntentID == g.str("id") && d.Type == "upload.completed" {
				return true
			}
		}
		return false
	})
	for _, d := range rc.deliveries() {
		if d.IntentID == g.str("id") && d.Checksum != sha256B64(img) {
			t.Fatalf("webhook without the checksum: %+v", d)
		}
	}
}

// TestUppyChecksumRoutes makes the calls @uppy/aws-s3 makes with a file
// meta checksum_sha256 (what the Uppy bundle's pre-processor sets): the
// params and multipart routes take it as the upload's checksum_sha256, not
// as metadata, and bind it as the JSON API does. A simple upload of other
// bytes is refused by the store; a multipart upload of other bytes is
// rejected at Uppy's complete (checksum_mismatch) and nothing is left.
func TestUppyChecksumRoutes(t *testing.T) {
	alice := login(t, "alice")
	base := exampleURL + "/files/s3"
	pdf := []byte("%PDF-1.7\n%fake but signed, with a checksum\n")

	// Simple: the grant binds the checksum; other bytes are refused.
	q := url.Values{"filename": {"doc.pdf"}, "type": {"application/pdf"}, "metadata[name]": {"doc.pdf"}, "metadata[checksum_sha256]": {sha256B64(pdf)}}
	p := call(t, "GET", base+"/params?"+q.Encode(), nil, alice...)
	if p.Status != 200 || p.fields()["x-amz-checksum-sha256"] != sha256B64(pdf) {
		t.Fatalf("params with a checksum: %d %s", p.Status, p.Raw)
	}
	id := p.fields()["x-amz-meta-intent-id"]
	status, body, err := testkit.PostForm(p.str("url"), p.fields(), "application/pdf", append(pdf, 'x'))
	if err != nil || status != 400 || !strings.Contains(body, "BadDigest") {
		t.Fatalf("other bytes: %d %v %.200s", status, err, body)
	}
	if status, body := uploadForm(t, p, "application/pdf", pdf); status != 201 {
		t.Fatalf("the declared bytes: %d %s", status, body)
	}
	done := call(t, "POST", exampleURL+"/files/"+id+"/complete", nil, alice...)
	if done.Status != 200 || done.str("checksum_sha256") != sha256B64(pdf) {
		t.Fatalf("complete: %d %s", done.Status, done.Raw)
	}
	if m, ok := done.Body["metadata"].(map[string]any); !ok || m["checksum_sha256"] != nil || m["name"] != "doc.pdf" {
		t.Fatalf("the checksum should not be kept as metadata: %s", done.Raw)
	}
	q.Set("metadata[checksum_sha256]", "not base64")
	expect(t, call(t, "GET", base+"/params?"+q.Encode(), nil, alice...), 400, "invalid_request")
	expect(t, call(t, "POST", base+"/multipart", map[string]any{"filename": "x.zip", "type": "application/zip", "metadata": map[string]any{"checksum_sha256": 42}}, alice...), 400, "invalid_request")

	// Multipart: compared on the promotion's copy at Uppy's complete.
	data := zipData(7 << 20)
	for _, tc := range []struct {
		name, sum string
		ok        bool
	}{{"right.zip", sha256B64(data), true}, {"wrong.zip", sha256B64(pdf), false}} {
		c := call(t, "POST", base+"/multipart", map[string]any{"filename": tc.name, "type": "application/zip", "metadata": map[string]any{"checksum_sha256": tc.sum}}, alice...)
		key, uid := c.str("key"), c.str("uploadId")
		if c.Status != 200 || key == "" || uid == "" {
			t.Fatalf("%s: create multipart: %d %s", tc.name, c.Status, c.Raw)
		}
		kq := "?key=" + url.QueryEscape(key)
		var parts []map[string]any
		for n, chunk := range [][]byte{data[:5<<20], data[5<<20:]} {
			s := call(t, "GET", fmt.Sprintf("%s/multipart/%s/%d%s", base, uid, n+1, kq), nil, alice...)
			if s.Status != 200 {
				t.Fatalf("%s: sign part: %d %s", tc.name, s.Status, s.Raw)
			}
			parts = append(parts, map[string]any{"PartNumber": n + 1, "ETag": put(t, s.str("url"), chunk)})
		}
		done := call(t, "POST", base+"/multipart/"+uid+"/complete"+kq, map[string]any{"parts": parts}, alice...)
		final := strings.TrimPrefix(key, "staging/")
		st := call(t, "GET", exampleURL+"/files/"+uid, nil, alice...)
		if tc.ok {
			if done.Status != 200 || done.str("checksum_sha256") != tc.sum || !objectExists(t, final) || st.str("checksum_sha256") != tc.sum {
				t.Fatalf("%s: complete: %d %s; intent %s", tc.name, done.Status, done.Raw, st.Raw)
			}
			continue
		}
		if done.Status != 422 || st.str("status") != "rejected" || st.str("reason") != "checksum_mismatch" || objectExists(t, final) || objectExists(t, key) {
			t.Fatalf("%s: complete: %d %s; intent %s", tc.name, done.Status, done.Raw, st.Raw)
		}
	}
}
