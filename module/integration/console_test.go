package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// consoleOutcome is what console.mjs saw in Chromium.
type consoleOutcome struct {
	UnauthStatus    int    `json:"unauth_status"`
	WrongPassStatus int    `json:"wrong_password_status"`
	Operator        string `json:"operator"`
	DeadRowFound    bool   `json:"dead_row_found"`
	AfterRedeliver  string `json:"after_redeliver"`
	// The other dead event, before and after Redeliver all.
	OtherBeforeAll    string   `json:"other_before_all"`
	AfterRedeliverAll string   `json:"after_redeliver_all"`
	SearchRows        []string `json:"search_rows"`
	Steps             []string `json:"steps"`
	StoryDeliveries   []struct {
		ID, State, Status, Latency, Endpoint string
	} `json:"story_deliveries"`
	HealthRows []string `json:"health_rows"`
	Charts     int      `json:"charts"`
	Checks     string   `json:"checks"`
	Banner     string   `json:"banner"`
	PageText   string   `json:"page_text"`
}

// TestBrowserConsole drives the operator console in a real Chromium through
// the Caddy binary running Caddyfile.example with basic auth: a webhook
// dies (the receiver answers 410), the operator finds the dead event,
// presses Redeliver with the receiver back up and sees it delivered, then
// searches the intent by identity and reads its story; last, Redeliver all
// brings a second dead event through. The screenshot is
// testdata/artifacts/console.png (and docs/console.png with
// UPDATE_SCREENSHOTS=1).
func TestBrowserConsole(t *testing.T) {
	root := testkit.RepoRoot()
	node, harness, chromium := browserHarness(t)

	// The backend of this Caddy: forward_auth takes the identity from a
	// test header; the webhook endpoint is a verifying receiver.
	rc := newHookReceiver(t)
	rc.mode.Store("gone")
	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/auth/upload":
			if u := r.Header.Get("X-Test-User"); u != "" {
				w.Header().Set("X-User-Id", u)
				return
			}
			http.Error(w, "who are you", http.StatusUnauthorized)
		case "/webhooks/uploads":
			rc.srv.Config.Handler.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(back.Close)

	const password = "correct horse battery staple"
	hash, err := testkit.RunCaddy(nil, "hash-password", "--plaintext", password)
	hash = strings.TrimSpace(hash)
	if err != nil || !strings.HasPrefix(hash, "$2a$") {
		t.Fatalf("caddy hash-password: %v %q", err, hash)
	}
	dir := t.TempDir()
	site, _ := testkit.FreePort()
	admin, _ := testkit.FreePort()
	siteURL, adminURL := fmt.Sprintf("http://127.0.0.1:%d", site), fmt.Sprintf("http://127.0.0.1:%d", admin)
	c, err := testkit.StartCaddy(filepath.Join(root, "Caddyfile.example"), fmt.Sprintf("127.0.0.1:%d", admin), []string{
		fmt.Sprintf("SITE_ADDRESS=:%d", site), fmt.Sprintf("ADMIN_ADDRESS=127.0.0.1:%d", admin),
		"BACKEND_URL=" + back.URL, "S3_ENDPOINT=" + s3srv.URL, "S3_BUCKET=uploads", "AWS_REGION=" + s3srv.Region,
		"AWS_ACCESS_KEY_ID=" + s3srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3srv.SecretKey, "WEBHOOK_SECRET=" + webhookSecret,
		"CONSOLE_USER=ops", "CONSOLE_PASSWORD_HASH=" + hash,
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(10 * time.Second)
	defer func() {
		if t.Failed() {
			t.Logf("caddy output (tail):\n%s", tail(c.Output(), 40))
		}
	}()

	// Two uploads whose webhooks die: the receiver answers 410 Gone.
	identity := fmt.Sprintf("console-user-%d", time.Now().UnixNano())
	img := pngFile(t)
	completed := func(identity string) string {
		user := []string{"X-Test-User", identity}
		g := call(t, "POST", siteURL+"/uploads", map[string]any{"filename": "pixel.png", "content_type": "image/png", "size": len(img)}, user...)
		if g.Status != 201 {
			t.Fatalf("grant: %d %s", g.Status, g.Raw)
		}
		if status, body := uploadForm(t, g, "image/png", img); status != 201 {
			t.Fatalf("upload: %d %s", status, body)
		}
		if r := call(t, "POST", siteURL+"/uploads/"+g.str("id")+"/complete", nil, user...); r.Status != 200 || r.str("status") != "completed" {
			t.Fatalf("complete: %d %s", r.Status, r.Raw)
		}
		return g.str("id")
	}
	id, other := completed(identity), completed(fmt.Sprintf("console-other-%d", time.Now().UnixNano()))
	eventID, otherEvent := waitDelivery(t, adminURL, id, "dead"), waitDelivery(t, adminURL, other, "dead")

	// The receiver is back; the operator redelivers from the console.
	rc.mode.Store("ok")
	artifacts := filepath.Join(root, "testdata", "artifacts")
	// The screenshot goes to the artifacts; with UPDATE_SCREENSHOTS=1 it
	// also replaces docs/console.png (so a plain test run leaves the
	// working tree clean).
	shot := filepath.Join(artifacts, "console.png")
	_ = os.Remove(shot)
	out := runScript(t, node, harness, "console.mjs", "--url", siteURL+"/_console/", "--user", "ops", "--password", password,
		"--event", eventID, "--other-event", otherEvent, "--intent", id, "--identity", identity, "--shot", shot, "--artifacts", artifacts, "--chromium", chromium)
	var o consoleOutcome
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatalf("console.mjs output is not JSON: %v\n%s", err, out)
	}
	t.Logf("console: %+v", o)

	if o.UnauthStatus != 401 || o.WrongPassStatus != 401 {
		t.Errorf("without the right login: %d, %d, want 401 from basic_auth", o.UnauthStatus, o.WrongPassStatus)
	}
	if o.Operator != "ops" || !o.DeadRowFound || o.AfterRedeliver != "delivered" || o.Banner != "" {
		t.Errorf("redelivery in the console: operator %q, dead row %v, state after %q, banner %q", o.Operator, o.DeadRowFound, o.AfterRedeliver, o.Banner)
	}
	if o.OtherBeforeAll != "dead" || o.AfterRedeliverAll != "delivered" {
		t.Errorf("Redeliver all: the other event was %q before, %q after, want dead, then delivered", o.OtherBeforeAll, o.AfterRedeliverAll)
	}
	for in, ev := range map[string]string{id: eventID, other: otherEvent} {
		if got := rc.byIntent()[in]; len(got) != 1 || got[ev].Type != "upload.completed" {
			t.Errorf("the receiver accepted %v for %s, want %s once", got, in, ev)
		}
		if st := waitDelivery(t, adminURL, in, "delivered"); st != ev {
			t.Errorf("admin API: delivered event %s, want %s", st, ev)
		}
	}
	if len(o.SearchRows) != 1 || o.SearchRows[0] != id {
		t.Errorf("search by identity: %v, want [%s]", o.SearchRows, id)
	}
	steps := strings.Join(o.Steps, "\n")
	for _, want := range []string{"granted", "to " + identity, "upload verified", "webhook upload.completed queued", "webhook delivered"} {
		if !strings.Contains(steps, want) {
			t.Errorf("the story lacks %q:\n%s", want, steps)
		}
	}
	if len(o.StoryDeliveries) != 1 || o.StoryDeliveries[0].ID != eventID || o.StoryDeliveries[0].State != "delivered" ||
		o.StoryDeliveries[0].Status != "200" || !strings.HasSuffix(o.StoryDeliveries[0].Latency, " ms") ||
		o.StoryDeliveries[0].Endpoint != back.URL+"/webhooks/uploads" {
		t.Errorf("story deliveries: %+v", o.StoryDeliveries)
	}
	if o.Charts < 2 || len(o.HealthRows) < 2 || !strings.Contains(o.Checks, "bucket") || strings.Contains(o.Checks, "no start-up checks") {
		t.Errorf("overview: %d charts, health rows %q, checks %q", o.Charts, o.HealthRows, o.Checks)
	}
	secret := strings.TrimPrefix(webhookSecret, "whsec_")
	if strings.Contains(o.PageText, secret) || strings.Contains(o.PageText, "whsec_") || strings.Contains(o.PageText, s3srv.SecretKey) {
		t.Errorf("the page shows a secret")
	}
	// Each action is logged with the operator.
	var one, all bool
	for _, line := range strings.Split(c.Output(), "\n") {
		if !strings.Contains(line, `"operator":"ops"`) {
			continue
		}
		one = one || strings.Contains(line, "operator console: redeliver webhook") && strings.Contains(line, eventID)
		all = all || strings.Contains(line, "operator console: redeliver every dead webhook") && strings.Contains(line, `"redelivered":1`)
	}
	if !one || !all {
		t.Errorf("log lines of the redeliveries with the operator: one %v, all %v", one, all)
	}

	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if cfg, err := png.DecodeConfig(bytes.NewReader(data)); err != nil || cfg.Width < 800 || cfg.Height < 400 {
		t.Fatalf("screenshot %s is not a usable PNG: %v %+v", shot, err, cfg)
	}
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		if err := os.WriteFile(filepath.Join(root, "docs", "console.png"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// waitDelivery waits (30 s at most) until the intent's first event is in
// state, through the admin API, and returns the event's id.
func waitDelivery(t *testing.T, adminURL, id, state string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := call(t, "GET", adminURL+"/direct_upload/intents/"+id, nil)
		var body struct {
			Deliveries []struct {
				ID       string `json:"id"`
				Delivery struct {
					State string `json:"state"`
				} `json:"delivery"`
			} `json:"deliveries"`
		}
		_ = json.Unmarshal([]byte(r.Raw), &body)
		if len(body.Deliveries) > 0 && body.Deliveries[0].Delivery.State == state {
			return body.Deliveries[0].ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delivery of %s did not become %s: %d %s", id, state, r.Status, r.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
