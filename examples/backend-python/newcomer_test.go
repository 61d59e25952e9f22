// Package backendpython holds the newcomer test: the real Caddy binary runs
// the Caddyfile printed in README's "Put it in front of your backend" in
// front of a backend written in another language than the demo's (app.py,
// Python standard library only), against a real versitygw.
package backendpython

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

const (
	caddyfileBegin = "<!-- readme-caddyfile:begin -->"
	caddyfileEnd   = "<!-- readme-caddyfile:end -->"
	aliceToken     = "token-of-alice"
)

// readmeCaddyfile returns the Caddyfile between the markers in README.md,
// without its code fence.
func readmeCaddyfile(readme string) (string, error) {
	_, after, ok := strings.Cut(readme, caddyfileBegin)
	if !ok {
		return "", errors.New("README.md has no " + caddyfileBegin)
	}
	block, _, ok := strings.Cut(after, caddyfileEnd)
	if !ok {
		return "", errors.New("README.md has no " + caddyfileEnd)
	}
	block = strings.TrimSpace(block)
	if !strings.HasPrefix(block, "```caddyfile\n") || !strings.HasSuffix(block, "\n```") {
		return "", errors.New("the README Caddyfile block must be one ```caddyfile fence")
	}
	return strings.TrimSuffix(strings.TrimPrefix(block, "```caddyfile\n"), "```"), nil
}

func TestReadmeCaddyfileMarkers(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(testkit.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := readmeCaddyfile(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"forward_auth", "copy_headers X-User-Id", "request_header -X-User-Id",
		"identity {http.request.header.X-User-Id}", "secret {env.WEBHOOK_SECRET}", "/webhooks/uploads"} {
		if !strings.Contains(cf, want) {
			t.Errorf("README's Caddyfile lacks %q", want)
		}
	}
	if _, err := readmeCaddyfile("no markers"); err == nil {
		t.Error("a README without markers was accepted")
	}
}

// stack is the newcomer's deployment: S3, the Python backend, and Caddy.
type stack struct {
	s3         *testkit.Versity
	python     *testkit.Proc
	pythonURL  string
	caddy      *testkit.Caddy
	siteURL    string
	pythonLogs func() string
}

func startStack(t *testing.T) *stack {
	t.Helper()
	for _, bin := range []string{testkit.Bin("CADDY_BIN", "caddy"), testkit.Bin("VERSITYGW_BIN", "versitygw")} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing: run `make build tools` (make test does)", bin)
		}
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed for the newcomer test: ", err)
	}
	readme, err := os.ReadFile(filepath.Join(testkit.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	caddyfile, err := readmeCaddyfile(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st := &stack{}

	if st.s3, err = testkit.StartVersity(filepath.Join(dir, "s3"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.s3.Stop(5 * time.Second) })
	if err := st.s3.CreateBucket(context.Background(), "photos"); err != nil {
		t.Fatal(err)
	}

	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	secret := "whsec_" + base64.StdEncoding.EncodeToString(raw)

	pport, _ := testkit.FreePort()
	st.pythonURL = fmt.Sprintf("http://127.0.0.1:%d", pport)
	st.python, err = testkit.Start([]string{"WEBHOOK_SECRET=" + secret, "TOKENS=" + aliceToken + ":alice"},
		python, filepath.Join(testkit.RepoRoot(), "examples", "backend-python", "app.py"), "--port", fmt.Sprint(pport))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.python.Stop(5 * time.Second) })
	if err := testkit.WaitHTTP(st.pythonURL+"/healthz", 200, 20*time.Second); err != nil {
		t.Fatalf("python backend: %v\n%s", err, st.python.Output())
	}

	cf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	site, _ := testkit.FreePort()
	admin, _ := testkit.FreePort()
	st.siteURL = fmt.Sprintf("http://127.0.0.1:%d", site)
	env := []string{
		"SITE_ADDRESS=" + st.siteURL,
		fmt.Sprintf("ADMIN_ADDRESS=127.0.0.1:%d", admin),
		"BACKEND_URL=" + st.pythonURL,
		"S3_ENDPOINT=" + st.s3.URL,
		"S3_BUCKET=photos",
		"AWS_REGION=" + st.s3.Region,
		"AWS_ACCESS_KEY_ID=" + st.s3.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + st.s3.SecretKey,
		"WEBHOOK_SECRET=" + secret,
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
	}
	if st.caddy, err = testkit.StartCaddy(cf, fmt.Sprintf("127.0.0.1:%d", admin), env); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.caddy.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("caddy output:\n%s\npython output:\n%s", st.caddy.Output(), st.python.Output())
		}
	})
	return st
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func postJSON(t *testing.T, url string, headers map[string]string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(http.MethodPost, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("POST %s: %d, not JSON: %q", url, resp.StatusCode, raw)
	}
	return resp.StatusCode, m
}

type pythonEvents struct {
	Auth []struct {
		User    *string `json:"user"`
		Method  string  `json:"method"`
		URI     string  `json:"uri"`
		Allowed bool    `json:"allowed"`
	} `json:"auth"`
	Webhooks []struct {
		WebhookID string         `json:"webhook_id"`
		Type      string         `json:"type"`
		Data      map[string]any `json:"data"`
	} `json:"webhooks"`
}

func (st *stack) events(t *testing.T) pythonEvents {
	t.Helper()
	resp, err := client.Get(st.pythonURL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ev pythonEvents
	if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func pngBytes(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := 0; i < 8; i++ {
		img.Set(i, i, color.RGBA{R: 200, A: 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestNewcomerPythonBackend follows README's "Put it in front of your
// backend" with the Python backend: its auth endpoint decides who uploads,
// its webhook receiver verifies the signed event, and an unauthorized
// request gets the backend's refusal.
func TestNewcomerPythonBackend(t *testing.T) {
	st := startStack(t)
	data := pngBytes(t)
	alice := map[string]string{"Authorization": "Bearer " + aliceToken}

	// Refused: no token, a wrong token, and a forged identity header.
	for name, h := range map[string]map[string]string{
		"no token":         nil,
		"wrong token":      {"Authorization": "Bearer not-a-token"},
		"forged X-User-Id": {"X-User-Id": "alice"},
	} {
		status, body := postJSON(t, st.siteURL+"/uploads", h, map[string]any{"filename": "a.png", "content_type": "image/png", "size": len(data)})
		errObj, _ := body["error"].(map[string]any)
		if status != http.StatusUnauthorized || errObj["code"] != "unauthenticated" || errObj["message"] != "log in first" {
			t.Errorf("%s: got %d %v, want the Python backend's 401 unauthenticated", name, status, body)
		}
	}
	ev := st.events(t)
	if len(ev.Auth) != 3 {
		t.Fatalf("the Python backend was asked %d times, want 3: %+v", len(ev.Auth), ev.Auth)
	}
	for _, a := range ev.Auth {
		if a.Allowed || a.User != nil || a.Method != "POST" || a.URI != "/uploads" {
			t.Errorf("refused request seen by the backend as %+v", a)
		}
	}

	// Allowed: grant, upload to S3, complete.
	status, grant := postJSON(t, st.siteURL+"/uploads", alice, map[string]any{"filename": "cat.png", "content_type": "image/png", "size": len(data), "metadata": map[string]any{"album": "newcomer"}})
	if status != http.StatusCreated {
		t.Fatalf("grant: %d %v", status, grant)
	}
	id, _ := grant["id"].(string)
	fields := map[string]string{}
	for k, v := range grant["fields"].(map[string]any) {
		fields[k] = v.(string)
	}
	if s3Status, s3Body, err := testkit.PostForm(grant["url"].(string), fields, "image/png", data); err != nil || s3Status != http.StatusCreated {
		t.Fatalf("upload to S3: %d %v %s", s3Status, err, s3Body)
	}
	status, done := postJSON(t, st.siteURL+"/uploads/"+id+"/complete", alice, nil)
	if status != http.StatusOK || done["status"] != "completed" {
		t.Fatalf("complete: %d %v", status, done)
	}
	// Forged identities never reach another user's upload.
	if status, _ := postJSON(t, st.siteURL+"/uploads/"+id+"/complete", map[string]string{"X-User-Id": "alice"}, nil); status != http.StatusUnauthorized {
		t.Errorf("complete without a token: %d, want 401", status)
	}

	// The backend authorized alice's POST /uploads and received the
	// verified webhook for this upload. complete's fast path usually
	// carries the backend's answer; the event itself may come a moment
	// later, so wait for it (bounded).
	deadline := time.Now().Add(30 * time.Second)
	for {
		ev = st.events(t)
		found := false
		for _, w := range ev.Webhooks {
			if w.Type == "upload.completed" && w.Data["id"] == id {
				found = true
				if w.Data["identity"] != "alice" || w.Data["bucket"] != "photos" || int(w.Data["size"].(float64)) != len(data) {
					t.Errorf("webhook data: %v", w.Data)
				}
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verified upload.completed for %s reached the Python backend: %+v", id, ev.Webhooks)
		}
		time.Sleep(100 * time.Millisecond)
	}
	allowed := 0
	for _, a := range ev.Auth {
		if a.Allowed && a.User != nil && *a.User == "alice" && a.Method == "POST" && strings.HasPrefix(a.URI, "/uploads") {
			allowed++
		}
	}
	if allowed < 2 { // the grant and the complete
		t.Errorf("the Python backend authorized %d requests of alice, want 2: %+v", allowed, ev.Auth)
	}
	// A forged webhook is refused and not recorded.
	req, _ := http.NewRequest(http.MethodPost, st.pythonURL+"/webhooks/uploads", strings.NewReader(`{"type":"upload.completed","data":{"id":"forged"}}`))
	req.Header.Set("webhook-id", "evt_forged")
	req.Header.Set("webhook-timestamp", fmt.Sprint(time.Now().Unix()))
	req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged webhook: %d, want 401", resp.StatusCode)
	}
	for _, w := range st.events(t).Webhooks {
		if w.WebhookID == "evt_forged" {
			t.Error("the forged webhook was recorded")
		}
	}
	if b, ok := done["backend"].(map[string]any); ok && b["message"] != "python saw upload.completed" {
		t.Errorf("complete's backend answer: %v", b)
	}
}
