package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/app"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

const testToken = "0123456789abcdef0123456789abcdef"

func post(target string, hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, nil)
	r.Host = "console.example:8080"
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

// TestCSRFGuard: a POST needs the page's token, and is refused when the
// browser says it comes from another site or origin.
func TestCSRFGuard(t *testing.T) {
	for _, c := range []struct {
		name string
		r    *http.Request
		ok   bool
	}{
		{"no token", post("/x"), false},
		{"wrong token", post("/x", TokenHeader, testToken+"0"), false},
		{"empty token", post("/x", TokenHeader, ""), false},
		{"token, no browser headers (curl)", post("/x", TokenHeader, testToken), true},
		{"token, same origin", post("/x", TokenHeader, testToken, "Sec-Fetch-Site", "same-origin", "Origin", "http://console.example:8080"), true},
		{"token, cross-site", post("/x", TokenHeader, testToken, "Sec-Fetch-Site", "cross-site"), false},
		{"token, same-site other origin", post("/x", TokenHeader, testToken, "Sec-Fetch-Site", "same-site"), false},
		{"token, other Origin", post("/x", TokenHeader, testToken, "Origin", "http://evil.example"), false},
		{"token, Origin null", post("/x", TokenHeader, testToken, "Origin", "null"), false},
		{"GET", httptest.NewRequest(http.MethodGet, "/x", nil), false},
	} {
		err := checkCSRF(c.r, testToken)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

// TestSecretStripping: webhook URLs lose userinfo, query and fragment;
// errors lose URLs' tokens, webhook secrets and signatures.
func TestSecretStripping(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pass@hooks.example.com/wh?token=SECRET#frag": "https://hooks.example.com/wh",
		"http://127.0.0.1:9000/webhooks/uploads":                   "http://127.0.0.1:9000/webhooks/uploads",
		"https://hooks.example.com/wh?":                            "https://hooks.example.com/wh",
		"":                                                         "",
		"not a url at all":                                         "(unparsable URL hidden)",
	} {
		if got := StripURL(in); got != want {
			t.Errorf("StripURL(%q) = %q, want %q", in, got, want)
		}
	}
	msg := `Post "https://u:SECRET1@hooks.example.com/wh?token=SECRET2": dial tcp: refused; secret whsec_SECRET3abc= sig v1,SECRET4SECRET4SECRET4SECRET4=`
	got := Scrub(msg)
	if strings.Contains(got, "SECRET") || !strings.Contains(got, "https://hooks.example.com/wh") || !strings.Contains(got, "dial tcp: refused") {
		t.Errorf("Scrub(%q) = %q", msg, got)
	}
}

// TestIDFloor: ids minted after t sort after idFloor(t), ids before it
// sort before.
func TestIDFloor(t *testing.T) {
	now := time.Now()
	id := upload.NewID()
	if lo, hi := idFloor(now.Add(-time.Second)), idFloor(now.Add(time.Second)); !(lo < id && id < hi) {
		t.Fatalf("idFloor: %s < %s < %s does not hold", lo, id, hi)
	}
	if !upload.ValidID(idFloor(now)) {
		t.Fatalf("idFloor(now) = %q is not id-shaped", idFloor(now))
	}
}

// withUser runs r as basic_auth would after letting user in.
func withUser(r *http.Request, user string) *http.Request {
	repl := caddy.NewReplacer()
	if user != "" {
		repl.Set(UserPlaceholder, user)
	}
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
}

type nextHandler struct{ called bool }

func (n *nextHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	n.called = true
	w.WriteHeader(http.StatusTeapot)
	return nil
}

func newHandler(t *testing.T, src *app.ConsoleSource, checks any) (*Handler, *int) {
	t.Helper()
	calls := new(int)
	h := &Handler{token: testToken, logger: zap.NewNop(),
		source: func() (*app.ConsoleSource, error) { *calls++; return src, nil },
		checks: func(context.Context) any { return checks },
		now:    time.Now}
	if err := h.setup(); err != nil {
		t.Fatal(err)
	}
	return h, calls
}

func serve(t *testing.T, h *Handler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, &nextHandler{}); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestRefusesWithoutAuth: without an authentication handler in front, the
// page says so in red and the API serves nothing.
func TestRefusesWithoutAuth(t *testing.T) {
	h, calls := newHandler(t, &app.ConsoleSource{}, nil)
	for _, r := range []*http.Request{
		httptest.NewRequest("GET", "/_console/", nil),
		withUser(httptest.NewRequest("GET", "/_console/", nil), ""),
	} {
		w := serve(t, h, r)
		if w.Code != 403 || !strings.Contains(w.Body.String(), "not protected") || strings.Contains(w.Body.String(), testToken) {
			t.Errorf("page without auth: %d %q", w.Code, w.Body.String())
		}
	}
	w := serve(t, h, withUser(httptest.NewRequest("GET", "/_console/api/overview", nil), ""))
	if w.Code != 403 || !strings.Contains(w.Body.String(), `"unprotected"`) || *calls != 0 {
		t.Errorf("API without auth: %d %s (source read %d times)", w.Code, w.Body.String(), *calls)
	}
	// Outside the base path: passed on.
	next := &nextHandler{}
	if err := h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/uploads", nil), next); err != nil || !next.called {
		t.Errorf("a path outside the console was not passed on")
	}
}

// TestPageEmbedsTokenAndUser: the page carries the token for its POSTs and
// the operator's name, escaped.
func TestPageEmbedsTokenAndUser(t *testing.T) {
	h, _ := newHandler(t, &app.ConsoleSource{}, nil)
	w := serve(t, h, withUser(httptest.NewRequest("GET", "/_console/", nil), "ops<script>"))
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, `content="`+testToken+`"`) || !strings.Contains(body, "ops&lt;script&gt;") ||
		strings.Contains(body, "ops<script>") {
		t.Fatalf("page: %d %s", w.Code, body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	for _, a := range []string{"console.js", "console.css"} {
		if w := serve(t, h, withUser(httptest.NewRequest("GET", "/_console/"+a, nil), "ops")); w.Code != 200 || w.Body.Len() < 100 {
			t.Errorf("%s: %d", a, w.Code)
		}
	}
}

// TestPostWithoutTokenDoesNothing: a redelivery without the token is
// refused before the app is even looked at.
func TestPostWithoutTokenDoesNothing(t *testing.T) {
	h, calls := newHandler(t, &app.ConsoleSource{}, nil)
	for _, r := range []*http.Request{
		post("/_console/api/deliveries/redeliver"),
		post("/_console/api/deliveries/redeliver", TokenHeader, testToken, "Sec-Fetch-Site", "cross-site"),
	} {
		w := serve(t, h, withUser(r, "ops"))
		if w.Code != 403 || !strings.Contains(w.Body.String(), `"csrf"`) {
			t.Errorf("POST: %d %s", w.Code, w.Body.String())
		}
	}
	if *calls != 0 {
		t.Errorf("the app was read %d times for refused POSTs", *calls)
	}
}

// fixture is a real Badger store with intents in every state of their
// delivery.
type fixture struct {
	db                          *store.Badger
	done, bad, waiting, pending string // intent ids
	deadEvent                   string
}

func newStoreFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := store.OpenBadger(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	now := time.Now().UTC()
	f := &fixture{db: db}
	mk := func(identity string, ago time.Duration) string {
		id := upload.NewID()
		in := &store.Intent{ID: id, Profile: "images", Bucket: "uploads", Key: "images/" + id + ".png", ContentType: "image/png",
			MaxSize: 1 << 20, Identity: identity, Status: store.StatusPending, CreatedAt: now.Add(-ago), UpdatedAt: now.Add(-ago),
			ExpiresAt: now.Add(5 * time.Minute), UploadID: "SECRET-UPLOAD-ID"}
		if err := db.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
		return id
	}
	finish := func(id string, status store.Status, typ, reason string) string {
		out, err := db.Update(ctx, id, store.StatusPending, func(in *store.Intent) (store.Event, error) {
			in.Status, in.Reason, in.UpdatedAt, in.VerifiedAt = status, reason, now, now
			if status == store.StatusCompleted {
				in.ObjectSize, in.ObjectType = 68, "image/png"
			} else {
				in.Detail = "the bytes are text/html"
			}
			return store.Event{ID: "evt_" + upload.NewID(), Type: typ, CreatedAt: now}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out.EventID
	}
	f.done = mk("alice", 22*time.Minute)
	ev := finish(f.done, store.StatusCompleted, store.EventCompleted, "")
	if _, err := db.SetDelivery(ctx, ev, store.Delivery{State: store.DeliveryDead, Attempts: 1, LastAttemptAt: now, LastStatus: 410,
		LastLatencyMS: 3.5, LastError: `Post "https://u:p@hooks.example/wh?token=SECRET": endpoint answered 410 Gone`}); err != nil {
		t.Fatal(err)
	}
	f.deadEvent = ev
	f.bad = mk("bob", 10*time.Minute)
	ev = finish(f.bad, store.StatusRejected, store.EventRejected, "content_mismatch")
	if _, err := db.SetDelivery(ctx, ev, store.Delivery{State: store.DeliveryDelivered, Attempts: 1, LastAttemptAt: now,
		LastStatus: 200, DeliveredAt: now, Response: json.RawMessage(`{"backend":"SECRET-ANSWER"}`)}); err != nil {
		t.Fatal(err)
	}
	f.waiting = mk("carol", 2*time.Minute)
	finish(f.waiting, store.StatusFailed, store.EventFailed, "client_failed") // stays pending delivery
	f.pending = mk("alice", time.Minute)
	mk("old", 3*time.Hour) // out of the chart's hour
	return f
}

func getJSON(t *testing.T, h *Handler, path string, v any) string {
	t.Helper()
	w := serve(t, h, withUser(httptest.NewRequest("GET", path, nil), "ops"))
	if w.Code != 200 {
		t.Fatalf("GET %s: %d %s", path, w.Code, w.Body.String())
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if b := w.Body.String(); strings.Contains(b, "SECRET") || strings.Contains(b, "whsec_") {
		t.Fatalf("GET %s shows a secret: %s", path, b)
	}
	return w.Body.String()
}

// TestJSONEndpoints reads a real Badger store through the console's JSON
// endpoints: the last hour's chart, webhook health, search, an intent's
// story, the dead deliveries, the checks; and none of it shows a secret.
func TestJSONEndpoints(t *testing.T) {
	f := newStoreFixture(t)
	src := &app.ConsoleSource{Store: f.db, Profiles: []app.ConsoleProfile{
		{Name: "images", WebhookURL: "https://u:p@hooks.example/wh?token=SECRET"}, {Name: "files"}}}
	h, _ := newHandler(t, src, nil)

	var ov Overview
	getJSON(t, h, "/_console/api/overview", &ov)
	if len(ov.Profiles) != 2 || ov.Profiles[0].Name != "files" || ov.Profiles[1].Name != "images" || ov.Truncated {
		t.Fatalf("profiles: %+v", ov.Profiles)
	}
	im := ov.Profiles[1]
	total := func(a []int) (n int) {
		for _, x := range a {
			n += x
		}
		return n
	}
	s := im.Series
	if total(s.Granted) != 4 || total(s.Completed) != 1 || total(s.Rejected) != 1 || total(s.Failed) != 1 || total(s.Expired) != 0 {
		t.Errorf("series: %+v", s)
	}
	// Granted 22 min ago: the bucket 35-40 min into the hour.
	if s.Granted[7] != 1 || s.Completed[buckets-1] != 1 {
		t.Errorf("buckets: granted %v completed %v", s.Granted, s.Completed)
	}
	hl := im.Health
	if hl.Endpoint != "https://hooks.example/wh" || hl.Dead != 1 || hl.Pending != 1 || hl.DeliveredHour != 1 ||
		hl.OldestPending.IsZero() || hl.LastErrorStatus != 410 || !strings.Contains(hl.LastError, "410 Gone") {
		t.Errorf("health: %+v", hl)
	}

	var sr SearchResult
	getJSON(t, h, "/_console/api/intents?q=ALICE", &sr)
	if len(sr.Intents) != 2 || sr.Intents[0].ID != f.pending || sr.Intents[1].ID != f.done {
		t.Errorf("search alice (newest first): %+v", sr.Intents)
	}
	getJSON(t, h, "/_console/api/intents?q=alice&status=completed", &sr)
	if len(sr.Intents) != 1 || sr.Intents[0].ID != f.done {
		t.Errorf("search alice completed: %+v", sr.Intents)
	}
	getJSON(t, h, "/_console/api/intents?q="+f.deadEvent, &sr)
	if len(sr.Intents) != 1 || sr.Intents[0].ID != f.done {
		t.Errorf("search by event id: %+v", sr.Intents)
	}
	if w := serve(t, h, withUser(httptest.NewRequest("GET", "/_console/api/intents?status=lost", nil), "ops")); w.Code != 400 {
		t.Errorf("bad status: %d", w.Code)
	}

	var st Story
	getJSON(t, h, "/_console/api/intents/"+f.done, &st)
	var whats []string
	for _, s := range st.Steps {
		whats = append(whats, s.What)
	}
	joined := strings.Join(whats, " | ")
	if !strings.Contains(joined, "granted") || !strings.Contains(joined, "upload verified") || !strings.Contains(joined, "webhook dead") ||
		len(st.Deliveries) != 1 || st.Deliveries[0].LastLatencyMS != 3.5 || st.Deliveries[0].Endpoint != "https://hooks.example/wh" {
		t.Errorf("story: %s %+v", joined, st.Deliveries)
	}
	getJSON(t, h, "/_console/api/intents/"+f.bad, &st)
	if st.Steps[1].What != "upload rejected: content_mismatch" || st.Steps[1].Detail != "the bytes are text/html" {
		t.Errorf("rejected story: %+v", st.Steps)
	}
	if w := serve(t, h, withUser(httptest.NewRequest("GET", "/_console/api/intents/"+upload.NewID(), nil), "ops")); w.Code != 404 {
		t.Errorf("unknown intent: %d", w.Code)
	}

	var dl DeadList
	getJSON(t, h, "/_console/api/dead", &dl)
	if len(dl.Deliveries) != 1 || dl.Deliveries[0].ID != f.deadEvent || dl.Deliveries[0].Identity != "alice" {
		t.Errorf("dead: %+v", dl)
	}

	var ch map[string]any
	if raw := getJSON(t, h, "/_console/api/checks", &ch); strings.TrimSpace(raw) != `{"checks":null}` {
		t.Errorf("checks when absent: %s", raw)
	}
	h2, _ := newHandler(t, src, map[string]any{"images": []string{"bucket ok"}})
	getJSON(t, h2, "/_console/api/checks", &ch)
	if ch["checks"] == nil {
		t.Errorf("checks when present: %v", ch)
	}
}

// TestCaddyfile reads the directive's forms.
func TestCaddyfile(t *testing.T) {
	for in, want := range map[string]string{
		"direct_upload_console":                             "",
		"direct_upload_console /ops":                        "/ops",
		"direct_upload_console {\n\tbase_path /admin/ui\n}": "/admin/ui",
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil || h.BasePath != want {
			t.Errorf("%q: %v, base_path %q, want %q", in, err, h.BasePath, want)
		}
	}
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("direct_upload_console {\n\tshow_secrets\n}")); err == nil {
		t.Error("an unknown option was accepted")
	}
}
