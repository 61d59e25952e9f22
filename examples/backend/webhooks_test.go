package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func testSecret(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

func mustWebhook(t *testing.T, secret string) *standardwebhooks.Webhook {
	t.Helper()
	wh, err := parseWebhookSecret(secret)
	if err != nil {
		t.Fatalf("parseWebhookSecret: %v", err)
	}
	return wh
}

func completedBody(intentID string) []byte {
	return fmt.Appendf(nil, `{"type":"upload.completed","timestamp":"2026-11-28T12:01:24.688Z","data":{`+
		`"id":%q,"profile":"images","status":"completed","bucket":"uploads","key":"images/%s.png",`+
		`"size":52311,"content_type":"image/png","filename":"cat.png","identity":"alice"}}`, intentID, intentID)
}

// signedRequest is a webhook delivery signed with secret at ts.
func signedRequest(t *testing.T, secret, id string, ts time.Time, body []byte) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/webhooks/uploads", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if secret != "" {
		sig, err := mustWebhook(t, secret).Sign(id, ts, body)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("webhook-signature", sig)
	}
	r.Header.Set("webhook-id", id)
	r.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	return r
}

type webhookAnswer struct {
	OK        bool   `json:"ok"`
	Message   string `json:"message"`
	Duplicate bool   `json:"duplicate"`
	Error     *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func serve(t *testing.T, h http.Handler, r *http.Request) (int, webhookAnswer) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	var a webhookAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer %q is not JSON: %v", rec.Body.String(), err)
	}
	return rec.Code, a
}

func listEvents(t *testing.T, h http.Handler) []event {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/webhooks/uploads", nil))
	var evs []event
	if err := json.Unmarshal(rec.Body.Bytes(), &evs); err != nil {
		t.Fatalf("GET /webhooks/uploads: %v: %s", err, rec.Body)
	}
	return evs
}

func TestWebhookVerified(t *testing.T) {
	secret, other := testSecret(t), testSecret(t)
	h := newServer(mustWebhook(t, secret)).routes()
	now := time.Now()
	body := completedBody("01intent")

	tests := []struct {
		name      string
		req       func() *http.Request
		status    int
		message   string // for 200
		duplicate bool
		events    int // events listed afterwards
	}{
		{"valid", func() *http.Request { return signedRequest(t, secret, "evt_1", now, body) },
			200, "alice uploaded cat.png (51 KiB)", false, 1},
		{"retry of the same webhook-id", func() *http.Request { return signedRequest(t, secret, "evt_1", now.Add(5*time.Second), body) },
			200, "alice uploaded cat.png (51 KiB)", true, 1},
		{"wrong secret", func() *http.Request { return signedRequest(t, other, "evt_2", now, body) },
			401, "", false, 1},
		{"tampered body", func() *http.Request {
			signed := signedRequest(t, secret, "evt_3", now, body)
			r := httptest.NewRequest(http.MethodPost, "/webhooks/uploads",
				bytes.NewReader(bytes.Replace(body, []byte("alice"), []byte("bob"), 1)))
			r.Header = signed.Header
			return r
		}, 401, "", false, 1},
		{"stale timestamp", func() *http.Request { return signedRequest(t, secret, "evt_4", now.Add(-10*time.Minute), body) },
			401, "", false, 1},
		{"future timestamp", func() *http.Request { return signedRequest(t, secret, "evt_5", now.Add(10*time.Minute), body) },
			401, "", false, 1},
		{"missing signature", func() *http.Request { return signedRequest(t, "", "evt_6", now, body) },
			401, "", false, 1},
		{"rotation: second signature matches", func() *http.Request {
			r := signedRequest(t, secret, "evt_7", now, []byte(`{"type":"upload.rejected","data":{"id":"01x","reason":"content_mismatch"}}`))
			wrong, _ := mustWebhook(t, other).Sign("evt_7", now, []byte("x"))
			r.Header.Set("webhook-signature", wrong+" "+r.Header.Get("webhook-signature"))
			return r
		}, 200, "rejected: content_mismatch", false, 2},
		{"verified but not JSON", func() *http.Request { return signedRequest(t, secret, "evt_8", now, []byte("[1,")) },
			400, "", false, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, a := serve(t, h, tc.req())
			if status != tc.status {
				t.Fatalf("status %d, want %d (%+v)", status, tc.status, a)
			}
			if status == 200 {
				if !a.OK || a.Message != tc.message || a.Duplicate != tc.duplicate {
					t.Errorf("answer %+v, want ok, message %q, duplicate %v", a, tc.message, tc.duplicate)
				}
			} else if status == 401 && (a.Error == nil || a.Error.Code != "bad_signature") {
				t.Errorf("answer %+v, want error code bad_signature", a)
			}
			if n := len(listEvents(t, h)); n != tc.events {
				t.Errorf("%d events stored, want %d", n, tc.events)
			}
		})
	}

	evs := listEvents(t, h)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	first := evs[1]
	if first.WebhookID != "evt_1" || !first.Verified || first.DuplicateDeliveries != 1 || first.Message != "alice uploaded cat.png (51 KiB)" {
		t.Errorf("stored event %+v, want evt_1, verified, 1 duplicate delivery", first)
	}
}

func TestWebhookUnverified(t *testing.T) {
	h := newServer(nil).routes()
	body := completedBody("01intent")
	r := signedRequest(t, "", "evt_1", time.Now().Add(-time.Hour), body)
	status, a := serve(t, h, r)
	if status != 200 || !a.OK || a.Message != "alice uploaded cat.png (51 KiB) (signature not checked)" {
		t.Fatalf("status %d, answer %+v", status, a)
	}
	status, a = serve(t, h, signedRequest(t, "", "evt_1", time.Now(), body))
	if status != 200 || !a.Duplicate {
		t.Fatalf("retry: status %d, answer %+v, want a duplicate", status, a)
	}
	status, _ = serve(t, h, httptest.NewRequest(http.MethodPost, "/webhooks/uploads", bytes.NewReader([]byte("nope"))))
	if status != 400 {
		t.Fatalf("invalid JSON: status %d, want 400", status)
	}
	evs := listEvents(t, h)
	if len(evs) != 1 || evs[0].Verified || evs[0].DuplicateDeliveries != 1 {
		t.Fatalf("events %+v, want one unverified event with 1 duplicate delivery", evs)
	}
}

func TestEventRingDedupeOutlivesRing(t *testing.T) {
	ring := newEventRing()
	for i := range webhookRingLen + 5 {
		if _, dup := ring.record(event{WebhookID: fmt.Sprint("evt_", i), Message: fmt.Sprint("m", i)}); dup {
			t.Fatalf("event %d taken for a duplicate", i)
		}
	}
	if n := len(ring.newestFirst()); n != webhookRingLen {
		t.Fatalf("%d events held, want %d", n, webhookRingLen)
	}
	// evt_0 left the ring but is still known.
	msg, dup := ring.record(event{WebhookID: "evt_0", Message: "other"})
	if !dup || msg != "m0" {
		t.Fatalf("evt_0 again: duplicate %v, message %q; want true, m0", dup, msg)
	}
	if got := ring.newestFirst()[0].WebhookID; got != fmt.Sprint("evt_", webhookRingLen+4) {
		t.Fatalf("newest event %s, want evt_%d", got, webhookRingLen+4)
	}
	// The id set itself is bounded.
	for i := range maxSeenWebhookIDs {
		ring.record(event{WebhookID: fmt.Sprint("new_", i)})
	}
	if len(ring.seen) != maxSeenWebhookIDs {
		t.Fatalf("%d ids remembered, want %d", len(ring.seen), maxSeenWebhookIDs)
	}
	if _, dup := ring.record(event{WebhookID: "evt_0"}); dup {
		t.Fatal("evt_0 should have been forgotten")
	}
}

func TestDescribeEvent(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{`{"type":"upload.completed","data":{"filename":"cat.png","identity":"alice","size":52311}}`, "alice uploaded cat.png (51 KiB)"},
		{`{"type":"upload.completed","data":{"key":"images/x.png"}}`, "someone uploaded images/x.png"},
		{`{"type":"upload.rejected","data":{"reason":"content_mismatch"}}`, "rejected: content_mismatch"},
		{`{"type":"upload.failed","data":{"detail":"S3 answered 403"}}`, "failed: S3 answered 403"},
		{`{"type":"upload.expired","data":{"id":"01abc"}}`, "expired: 01abc was never completed"},
		{`{"type":"upload.other"}`, "received upload.other"},
	}
	for _, tc := range tests {
		var p webhookPayload
		if err := json.Unmarshal([]byte(tc.body), &p); err != nil {
			t.Fatal(err)
		}
		if got := describeEvent(p); got != tc.want {
			t.Errorf("describeEvent(%s) = %q, want %q", tc.body, got, tc.want)
		}
	}
}

func TestParseWebhookSecret(t *testing.T) {
	for _, bad := range []string{"abc", "whsec_", "whsec_not base64!", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		if _, err := parseWebhookSecret(bad); err == nil {
			t.Errorf("parseWebhookSecret(%q) succeeded", bad)
		}
	}
	if _, err := parseWebhookSecret(testSecret(t)); err != nil {
		t.Errorf("valid secret: %v", err)
	}
}
