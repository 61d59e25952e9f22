package integration

import (
	"crypto/sha256"
	"encoding/base64"
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
