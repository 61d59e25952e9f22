package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// hookReceiver is the backend's webhook endpoint in these tests: a real
// HTTP server that verifies each request with the Standard Webhooks
// reference library and records what it accepted.
type hookReceiver struct {
	srv  *httptest.Server
	wh   *standardwebhooks.Webhook
	mode atomic.Value // "ok", "down" (503), "gone" (410), "slow"
	mu   sync.Mutex
	got  []hookDelivery
	bad  int
	// arrived counts verified requests as they arrive, before the answer
	// (a slow one is in flight from then on); refused holds the intents
	// whose events were answered "down" or "gone".
	arrived atomic.Int64
	refused map[string]bool
	// received, when set, is told of each accepted delivery.
	received chan hookDelivery
}

type hookDelivery struct {
	WebhookID string
	Type      string
	IntentID  string
	Status    string
	Checksum  string
}

func newHookReceiver(t testing.TB) *hookReceiver {
	wh, err := standardwebhooks.NewWebhook(webhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	rc := &hookReceiver{wh: wh, refused: map[string]bool{}}
	rc.mode.Store("ok")
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := rc.wh.Verify(body, r.Header); err != nil {
			rc.mu.Lock()
			rc.bad++
			rc.mu.Unlock()
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		rc.arrived.Add(1)
		var p struct {
			Type string `json:"type"`
			Data struct {
				ID, Status, Filename string
				Checksum             string `json:"checksum_sha256"`
			} `json:"data"`
		}
		json.Unmarshal(body, &p)
		switch rc.mode.Load().(string) {
		case "down", "gone":
			rc.mu.Lock()
			rc.refused[p.Data.ID] = true
			rc.mu.Unlock()
			if rc.mode.Load() == "gone" {
				w.WriteHeader(http.StatusGone)
			} else {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		case "slow":
			time.Sleep(time.Second) // slow on purpose: an attempt stays in flight
		}
		d := hookDelivery{WebhookID: r.Header.Get("webhook-id"), Type: p.Type, IntentID: p.Data.ID, Status: p.Data.Status, Checksum: p.Data.Checksum}
		rc.mu.Lock()
		rc.got = append(rc.got, d)
		rc.mu.Unlock()
		if rc.received != nil {
			rc.received <- d
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":true,"seen":%q}`, p.Data.ID)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// refusedIntents is how many intents had an event refused.
func (rc *hookReceiver) refusedIntents() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.refused)
}

func (rc *hookReceiver) deliveries() []hookDelivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hookDelivery(nil), rc.got...)
}

// byIntent groups accepted deliveries: intent id → distinct webhook ids.
func (rc *hookReceiver) byIntent() map[string]map[string]hookDelivery {
	out := map[string]map[string]hookDelivery{}
	for _, d := range rc.deliveries() {
		if out[d.IntentID] == nil {
			out[d.IntentID] = map[string]hookDelivery{}
		}
		out[d.IntentID][d.WebhookID] = d
	}
	return out
}

const hooksCaddyfile = `{
	admin 127.0.0.1:{$ADMIN_PORT}
	direct_upload {
		storage {$STORE_DIR}
	}
}
http://127.0.0.1:{$SITE_PORT} {
	bind 127.0.0.1
	direct_upload {
		profile hooks
		base_path /up
		bucket uploads
		endpoint {$S3_ENDPOINT}
		path_style
		access_key_id {env.S3_ACCESS}
		secret_access_key {env.S3_SECRET}
		allowed_types image/png
		identity {http.request.header.X-Test-User}
		webhook {$HOOK_URL} {
			secret {env.HOOK_SECRET}
			timeout 3s
			retry 0s 200ms 300ms 500ms 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s
			wait 2s
		}
	}
}
`

// hooks is a Caddy whose profile sends webhooks to a test receiver; it can
// be killed and started again on the same ports and store.
type hooks struct {
	*testkit.Caddy
	url, cf, admin string
	env            []string
}

func newHooks(t testing.TB, receiverURL string) *hooks {
	return newHooksWith(t, receiverURL, hooksCaddyfile)
}

// newHooksWith starts a Caddy on the Caddyfile text cf, which may use the
// same placeholders as hooksCaddyfile.
func newHooksWith(t testing.TB, receiverURL, caddyfile string) *hooks {
	t.Helper()
	dir := t.TempDir()
	site, _ := testkit.FreePort()
	admin, _ := testkit.FreePort()
	h := &hooks{url: fmt.Sprintf("http://127.0.0.1:%d/up", site), cf: filepath.Join(dir, "Caddyfile"), admin: fmt.Sprintf("127.0.0.1:%d", admin)}
	if err := os.WriteFile(h.cf, []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	h.env = []string{
		fmt.Sprintf("SITE_PORT=%d", site), fmt.Sprintf("ADMIN_PORT=%d", admin),
		"STORE_DIR=" + filepath.Join(dir, "intents"), "S3_ENDPOINT=" + s3srv.URL,
		"S3_ACCESS=" + s3srv.AccessKey, "S3_SECRET=" + s3srv.SecretKey,
		"HOOK_URL=" + receiverURL, "HOOK_SECRET=" + webhookSecret,
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
	}
	h.start(t)
	t.Cleanup(func() {
		if h.Caddy != nil && !h.Exited() {
			h.Stop(15 * time.Second)
		}
	})
	return h
}

func (h *hooks) start(t testing.TB) {
	t.Helper()
	c, err := testkit.StartCaddy(h.cf, h.admin, h.env)
	if err != nil {
		t.Fatal(err)
	}
	h.Caddy = c
}

var carol = []string{"X-Test-User", "carol"}

// uploaded grants and uploads a PNG (or HTML disguised as one).
func (h *hooks) uploaded(t testing.TB, evil bool) string {
	t.Helper()
	g := call(t, "POST", h.url, map[string]any{"content_type": "image/png", "filename": "x.png"}, carol...)
	if g.Status != 201 {
		t.Fatalf("grant: %d %s", g.Status, g.Raw)
	}
	data := pngFile(t)
	if evil {
		data = []byte("<html><script>alert(1)</script></html>")
	}
	if status, body := uploadForm(t, g, "image/png", data); status != 201 {
		t.Fatalf("upload: %d %s", status, body)
	}
	return g.str("id")
}

func waitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebhooksThroughCaddy: each outcome reaches the backend signed, and
// the backend's answer comes back to the client of complete.
func TestWebhooksThroughCaddy(t *testing.T) {
	rc := newHookReceiver(t)
	h := newHooks(t, rc.srv.URL)

	good := h.uploaded(t, false)
	r := call(t, "POST", h.url+"/"+good+"/complete", nil, carol...)
	if r.Status != 200 {
		t.Fatalf("complete: %d %s", r.Status, r.Raw)
	}
	backend, _ := r.Body["backend"].(map[string]any)
	if backend["seen"] != good {
		t.Fatalf("backend answer not passed on: %s", r.Raw)
	}
	evil := h.uploaded(t, true)
	if r := call(t, "POST", h.url+"/"+evil+"/complete", nil, carol...); r.Status != 422 {
		t.Fatalf("evil complete: %d %s", r.Status, r.Raw)
	}
	g := call(t, "POST", h.url, map[string]any{"content_type": "image/png"}, carol...)
	call(t, "POST", h.url+"/"+g.str("id")+"/fail", map[string]string{"reason": "cancelled"}, carol...)

	waitFor(t, "three webhooks", 10*time.Second, func() bool { return len(rc.byIntent()) == 3 })
	want := map[string]string{good: "upload.completed", evil: "upload.rejected", g.str("id"): "upload.failed"}
	for id, typ := range want {
		evs := rc.byIntent()[id]
		if len(evs) != 1 {
			t.Fatalf("%s: %d distinct events", id, len(evs))
		}
		for _, d := range evs {
			if d.Type != typ {
				t.Errorf("%s: %s, want %s", id, d.Type, typ)
			}
		}
	}
	if rc.bad != 0 {
		t.Fatalf("%d webhooks failed verification", rc.bad)
	}
}

func adminCall(t testing.TB, h *hooks, method, path string) response {
	t.Helper()
	return call(t, method, "http://"+h.AdminAddr+path, nil)
}

// TestDeadLetterReplayThroughAdmin: a 410 dead-letters the event; the admin
// API lists it and redelivers it once the backend is back.
func TestDeadLetterReplayThroughAdmin(t *testing.T) {
	rc := newHookReceiver(t)
	rc.mode.Store("gone")
	h := newHooks(t, rc.srv.URL)
	id := h.uploaded(t, false)
	if r := call(t, "POST", h.url+"/"+id+"/complete", nil, carol...); r.Status != 200 || r.Body["backend"] != nil {
		t.Fatalf("complete: %d %s", r.Status, r.Raw)
	}
	var dead []any
	waitFor(t, "a dead letter", 10*time.Second, func() bool {
		r := adminCall(t, h, "GET", "/direct_upload/deliveries?state=dead")
		dead, _ = r.Body["deliveries"].([]any)
		return len(dead) == 1
	})
	d := dead[0].(map[string]any)
	if d["intent_id"] != id || d["type"] != "upload.completed" || d["delivery"].(map[string]any)["last_status"].(float64) != 410 {
		t.Fatalf("dead letter: %v", d)
	}
	rc.mode.Store("ok")
	if r := adminCall(t, h, "POST", "/direct_upload/deliveries/redeliver?state=dead"); r.Status != 200 || r.Body["redelivered"].(float64) != 1 {
		t.Fatalf("redeliver: %d %s", r.Status, r.Raw)
	}
	waitFor(t, "the replayed delivery", 10*time.Second, func() bool { return len(rc.byIntent()[id]) == 1 })
	// The receiver has it; the dispatcher records it right after.
	var r response
	waitFor(t, "the replay recorded as delivered", 5*time.Second, func() bool {
		r = adminCall(t, h, "GET", "/direct_upload/deliveries/"+d["id"].(string))
		return r.Status == 200 && r.Body["delivery"].(map[string]any)["state"] == "delivered"
	})
	if r := adminCall(t, h, "GET", "/direct_upload/deliveries?state=bogus"); r.Status != 400 {
		t.Fatalf("bad state: %d", r.Status)
	}
}

// TestReceiverDownThenUpThroughCaddy: events queue while the backend is
// down and all arrive, with their ids, once it is back.
func TestReceiverDownThenUpThroughCaddy(t *testing.T) {
	rc := newHookReceiver(t)
	rc.mode.Store("down")
	h := newHooks(t, rc.srv.URL)
	var ids []string
	for i := 0; i < 5; i++ {
		id := h.uploaded(t, false)
		if r := call(t, "POST", h.url+"/"+id+"/complete", nil, carol...); r.Status != 200 {
			t.Fatalf("complete while backend down: %d %s", r.Status, r.Raw)
		}
		ids = append(ids, id)
	}
	// Every event has been tried, and refused, while the backend was down.
	waitFor(t, "each event refused while the backend is down", 15*time.Second, func() bool { return rc.refusedIntents() == len(ids) })
	rc.mode.Store("ok")
	waitFor(t, "all queued events", 15*time.Second, func() bool { return len(rc.byIntent()) == len(ids) })
	for _, id := range ids {
		if len(rc.byIntent()[id]) != 1 {
			t.Fatalf("%s: %v", id, rc.byIntent()[id])
		}
	}
}

// TestKill9Loop kills Caddy with SIGKILL at random moments during bursts of
// completions, restarts it, and checks that in the end every finalized
// intent has exactly one event, delivered, and no pending intent has one.
func TestKill9Loop(t *testing.T) {
	rc := newHookReceiver(t)
	h := newHooks(t, rc.srv.URL)
	var mu sync.Mutex
	var ids []string
	for round := 0; round < 10; round++ {
		// Uploads first, so the burst below is only completions.
		var batch []string
		for i := 0; i < 12; i++ {
			batch = append(batch, h.uploaded(t, i%4 == 3))
		}
		mu.Lock()
		ids = append(ids, batch...)
		mu.Unlock()
		var wg sync.WaitGroup
		for _, id := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", h.url+"/"+id+"/complete", nil)
				req.Header.Set(carol[0], carol[1])
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
		}
		time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
		h.Kill()
		wg.Wait()
		h.start(t)
	}
	// Whatever the kills interrupted, the clients retry.
	for _, id := range ids {
		r := call(t, "POST", h.url+"/"+id+"/complete", nil, carol...)
		if r.Status != 200 && r.Status != 422 {
			t.Fatalf("%s: %d %s", id, r.Status, r.Raw)
		}
	}
	waitFor(t, "every event delivered", 30*time.Second, func() bool { return len(rc.byIntent()) == len(ids) })
	got := rc.byIntent()
	for _, id := range ids {
		st := call(t, "GET", h.url+"/"+id, nil, carol...)
		evs := got[id]
		if len(evs) != 1 {
			t.Fatalf("%s (%s): %d distinct events, want exactly 1: %v", id, st.str("status"), len(evs), evs)
		}
		for _, d := range evs {
			if d.Type != "upload."+st.str("status") || d.Status != st.str("status") {
				t.Fatalf("%s: state %s but event %s", id, st.str("status"), d.Type)
			}
		}
	}
	t.Logf("%d intents, %d deliveries (duplicates allowed by at-least-once: %d)", len(ids), len(rc.deliveries()), len(rc.deliveries())-len(ids))
}

// TestSIGTERMDrainsAttempts: an attempt in flight when Caddy is told to
// stop finishes and is recorded, so it is not sent again after restart.
func TestSIGTERMDrainsAttempts(t *testing.T) {
	rc := newHookReceiver(t)
	rc.mode.Store("slow")
	h := newHooks(t, rc.srv.URL)
	id := h.uploaded(t, false)
	go func() {
		req, _ := http.NewRequest("POST", h.url+"/"+id+"/complete", nil)
		req.Header.Set(carol[0], carol[1])
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	// The attempt is in flight once it has arrived (the receiver takes 1s).
	waitFor(t, "the attempt in flight", 10*time.Second, func() bool { return rc.arrived.Load() == 1 })
	start := time.Now()
	h.Stop(20 * time.Second)
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("shutdown took %v", took)
	}
	if n := len(rc.deliveries()); n != 1 {
		t.Fatalf("in-flight delivery lost at shutdown: %d received", n)
	}
	rc.mode.Store("ok")
	h.start(t)
	// The restarted Caddy has the drained attempt's record: delivered in
	// one attempt. (Had the record been lost, the event would be pending
	// and only become delivered by being sent again.)
	var dl map[string]any
	waitFor(t, "the delivery recorded as delivered", 10*time.Second, func() bool {
		one := adminCall(t, h, "GET", "/direct_upload/intents/"+id)
		dels, _ := one.Body["deliveries"].([]any)
		if len(dels) != 1 {
			return false
		}
		dl, _ = dels[0].(map[string]any)["delivery"].(map[string]any)
		return dl["state"] == "delivered"
	})
	if n := len(rc.deliveries()); n != 1 || dl["attempts"] != float64(1) {
		t.Fatalf("drained delivery sent again after restart: %d received, record %v", n, dl)
	}
}

// deliveriesSettled waits until Caddy's outbox has n events delivered and
// none pending, then runs one more event (sentinel) through a full
// attempt and its record: any attempt some dispatcher started on the n
// earlier events has reached the receiver by then. It stands in for
// "wait a while and check that nothing more arrives".
func deliveriesSettled(t *testing.T, h *hooks, n int) (sentinel string) {
	t.Helper()
	count := func(state string) int {
		total, after := 0, ""
		for {
			r := adminCall(t, h, "GET", "/direct_upload/deliveries?limit=1000&state="+state+"&after="+after)
			dels, _ := r.Body["deliveries"].([]any)
			total += len(dels)
			if r.Status != 200 || len(dels) < 1000 {
				return total
			}
			after = r.str("next")
		}
	}
	waitFor(t, fmt.Sprintf("%d deliveries recorded, none pending", n), 20*time.Second, func() bool {
		return count("pending") == 0 && count("delivered") == n
	})
	sentinel = h.uploaded(t, false)
	if r := call(t, "POST", h.url+"/"+sentinel+"/complete", nil, carol...); r.Status != 200 {
		t.Fatalf("sentinel complete: %d %s", r.Status, r.Raw)
	}
	waitFor(t, "the sentinel's delivery recorded", 20*time.Second, func() bool {
		return count("pending") == 0 && count("delivered") == n+1
	})
	return sentinel
}

// TestReloadKeepsOneDispatcher: reloading while uploads complete neither
// loses an event nor starts a second dispatcher (which would deliver
// events twice).
func TestReloadKeepsOneDispatcher(t *testing.T) {
	rc := newHookReceiver(t)
	h := newHooks(t, rc.srv.URL)
	var ids []string
	for i := 0; i < 6; i++ {
		for j := 0; j < 5; j++ {
			id := h.uploaded(t, false)
			if r := call(t, "POST", h.url+"/"+id+"/complete", nil, carol...); r.Status != 200 {
				t.Fatalf("complete: %d %s", r.Status, r.Raw)
			}
			ids = append(ids, id)
		}
		if out, err := h.Run("reload", "--config", h.cf, "--adapter", "caddyfile", "--address", h.admin, "--force"); err != nil {
			t.Fatalf("reload: %v\n%s", err, out)
		}
	}
	waitFor(t, "every event", 15*time.Second, func() bool { return len(rc.byIntent()) == len(ids) })
	deliveriesSettled(t, h, len(ids))
	if n := len(rc.deliveries()); n != len(ids)+1 {
		t.Fatalf("%d deliveries for %d events across 6 reloads (and one after)", n, len(ids)+1)
	}
}
