package integration

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

// bombPNG is a valid PNG signature and IHDR declaring w x h pixels, then
// a few hundred bytes: 900 megapixels for 30000 x 30000, on disk less than
// a kilobyte.
func bombPNG(w, h uint32) []byte {
	b := append([]byte("\x89PNG\r\n\x1a\n"), 0, 0, 0, 13)
	b = append(b, "IHDR"...)
	b = binary.BigEndian.AppendUint32(b, w)
	b = binary.BigEndian.AppendUint32(b, h)
	b = append(b, 8, 2, 0, 0, 0, 0x00, 0x00, 0x00, 0x00)
	return append(b, make([]byte, 300)...)
}

func jpegFile(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, w, h)), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestDecompressionBombRejectedByExample: Caddyfile.example, unchanged,
// refuses a PNG declaring 30000 x 30000 pixels (its images profile gets the
// 50 megapixel default) and deletes it.
func TestDecompressionBombRejectedByExample(t *testing.T) {
	alice := login(t, "alice")
	bomb := bombPNG(30000, 30000)
	g := grant(t, alice, map[string]any{"content_type": "image/png", "size": len(bomb)})
	if status, body := uploadForm(t, g, "image/png", bomb); status != 201 {
		t.Fatalf("upload: %d %s", status, body)
	}
	r := call(t, "POST", exampleURL+"/uploads/"+g.str("id")+"/complete", nil, alice...)
	expect(t, r, 422, "upload_rejected")
	if r.str("reason") != "image_too_large" || r.Body["width"] != 30000.0 || r.Body["height"] != 30000.0 {
		t.Fatalf("rejection: %s", r.Raw)
	}
	if objectExists(t, g.str("key")) {
		t.Fatal("the bomb is still in the bucket")
	}
}

// rawHooks records every delivery as sent, after checking its v1
// signature with the Standard Webhooks reference library.
type rawHooks struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []rawHook
}

type rawHook struct {
	header http.Header
	body   []byte
}

func newRawHooks(t *testing.T) *rawHooks {
	wh, err := standardwebhooks.NewWebhook(webhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	rh := &rawHooks{}
	rh.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, "bad v1 signature", http.StatusUnauthorized)
			return
		}
		rh.mu.Lock()
		rh.got = append(rh.got, rawHook{r.Header.Clone(), body})
		rh.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(rh.srv.Close)
	return rh
}

// of returns the delivery of the event about the intent, if any.
func (rh *rawHooks) of(t *testing.T, intentID string) (rawHook, map[string]any, bool) {
	rh.mu.Lock()
	defer rh.mu.Unlock()
	for _, d := range rh.got {
		var p struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(d.body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Data["id"] == intentID {
			return d, p.Data, true
		}
	}
	return rawHook{}, nil, false
}

// nodeVerifyV1a is an independent verifier: Node's crypto (OpenSSL).
const nodeVerifyV1a = `
const crypto = require("node:crypto");
const [pub, id, ts, sigs] = process.argv.slice(1);
const body = require("node:fs").readFileSync(0);
const key = crypto.createPublicKey({
  key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), Buffer.from(pub.slice(5), "base64")]),
  format: "der", type: "spki",
});
const msg = Buffer.concat([Buffer.from(id + "." + ts + "."), body]);
const ok = sigs.split(" ").some((s) => s.startsWith("v1a,") && crypto.verify(null, msg, key, Buffer.from(s.slice(4), "base64")));
process.stdout.write(ok ? "valid" : "invalid");
`

func nodeVerifies(t *testing.T, whpk string, d rawHook) bool {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed as the independent verifier: %v", err)
	}
	cmd := exec.Command(node, "-e", nodeVerifyV1a, whpk, d.header.Get("webhook-id"), d.header.Get("webhook-timestamp"), d.header.Get("webhook-signature"))
	cmd.Stdin = bytes.NewReader(d.body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	return string(out) == "valid"
}

const limitsCaddyfile = `{
	admin 127.0.0.1:{$ADMIN_PORT}
	direct_upload {
		storage {$STORE_DIR}
	}
}
http://127.0.0.1:{$SITE_PORT} {
	bind 127.0.0.1
	direct_upload {
		profile limits
		base_path /up
		bucket uploads
		endpoint {$S3_ENDPOINT}
		path_style
		access_key_id {env.S3_ACCESS}
		secret_access_key {env.S3_SECRET}
		allowed_types image/png image/jpeg
		max_width 100
		max_height 80
		identity {http.request.header.X-Test-User}
		webhook {$HOOK_URL} {
			secret {env.HOOK_SECRET}
			signing_key SIGNING_KEY
			retry 0s 200ms 500ms 1s 1s 1s
			wait 2s
		}
	}
}
`

// TestImageLimitsAndEd25519ThroughCaddy: a profile with max_width and
// max_height and an HMAC secret beside an Ed25519 key (a move from one to
// the other). A normal PNG completes with its size in the answer and the
// webhook, whose v1 signature the reference library verifies and whose
// v1a signature Node verifies; a JPEG over the width limit is rejected and
// deleted.
func TestImageLimitsAndEd25519ThroughCaddy(t *testing.T) {
	whsk, whpk, err := webhook.NewEd25519KeyPair()
	if err != nil {
		t.Fatal(err)
	}
	rh := newRawHooks(t)
	h := newHooksWith(t, rh.srv.URL, strings.Replace(limitsCaddyfile, "SIGNING_KEY", whsk, 1))

	upload := func(ct string, data []byte) response {
		g := call(t, "POST", h.url, map[string]any{"content_type": ct, "size": len(data)}, carol...)
		if g.Status != 201 {
			t.Fatalf("grant: %d %s", g.Status, g.Raw)
		}
		if status, body := uploadForm(t, g, ct, data); status != 201 {
			t.Fatalf("upload: %d %s", status, body)
		}
		return g
	}

	g := upload("image/png", pngFile(t)) // 8 x 8
	r := call(t, "POST", h.url+"/"+g.str("id")+"/complete", nil, carol...)
	if r.Status != 200 || r.str("status") != "completed" || r.Body["width"] != 8.0 || r.Body["height"] != 8.0 {
		t.Fatalf("complete: %d %s", r.Status, r.Raw)
	}
	var d rawHook
	var data map[string]any
	waitFor(t, "the completed webhook", 20*time.Second, func() bool {
		var ok bool
		d, data, ok = rh.of(t, g.str("id"))
		return ok
	})
	if data["width"] != 8.0 || data["height"] != 8.0 || data["status"] != "completed" {
		t.Fatalf("webhook data: %v", data)
	}
	sigs := strings.Fields(d.header.Get("webhook-signature"))
	if len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1a,") {
		t.Fatalf("webhook-signature %q: want v1 and v1a", d.header.Get("webhook-signature"))
	}
	if !nodeVerifies(t, whpk, d) {
		t.Fatal("Node refused the v1a signature of a delivery")
	}
	_, stranger, _ := webhook.NewEd25519KeyPair()
	if nodeVerifies(t, stranger, d) {
		t.Fatal("Node accepted the signature for another public key")
	}

	wide := upload("image/jpeg", jpegFile(t, 101, 10))
	r = call(t, "POST", h.url+"/"+wide.str("id")+"/complete", nil, carol...)
	expect(t, r, 422, "upload_rejected")
	if r.str("reason") != "image_too_large" || r.Body["width"] != 101.0 {
		t.Fatalf("rejection: %s", r.Raw)
	}
	if objectExists(t, wide.str("key")) {
		t.Fatal("the over-limit JPEG is still in the bucket")
	}
	waitFor(t, "the rejected webhook", 20*time.Second, func() bool {
		_, data, ok := rh.of(t, wide.str("id"))
		return ok && data["reason"] == "image_too_large"
	})
}
