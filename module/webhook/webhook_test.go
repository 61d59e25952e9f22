package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // 24 bytes
	secretB = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM="
)

func mustSecret(t testing.TB, s string) Secret {
	t.Helper()
	sec, err := ParseSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

func verifier(t testing.TB, s string) *standardwebhooks.Webhook {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(s)
	if err != nil {
		t.Fatal(err)
	}
	return wh
}

func signedHeaders(secrets []Secret, id string, ts time.Time, body []byte) http.Header {
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, Sign(secrets, id, ts, body))
	return h
}

// TestSignatureIndependentlyVerified checks our signatures with the
// Standard Webhooks reference library, and that it refuses forgeries.
func TestSignatureIndependentlyVerified(t *testing.T) {
	a, b := mustSecret(t, secretA), mustSecret(t, secretB)
	body := []byte(`{"type":"upload.completed","data":{"id":"x"}}`)
	now := time.Now()
	whA, whB := verifier(t, secretA), verifier(t, secretB)

	if err := whA.Verify(body, signedHeaders([]Secret{a}, "evt_1", now, body)); err != nil {
		t.Fatalf("valid signature refused: %v", err)
	}
	// Rotation: two signatures; a receiver with either secret accepts.
	both := signedHeaders([]Secret{a, b}, "evt_1", now, body)
	if err := whA.Verify(body, both); err != nil {
		t.Fatalf("old secret refused during rotation: %v", err)
	}
	if err := whB.Verify(body, both); err != nil {
		t.Fatalf("new secret refused during rotation: %v", err)
	}
	if n := len(strings.Fields(both.Get(HeaderSignature))); n != 2 {
		t.Fatalf("%d signatures for 2 secrets", n)
	}
	for name, h := range map[string]http.Header{
		"tampered body": signedHeaders([]Secret{a}, "evt_1", now, []byte(`{"type":"upload.completed","data":{"id":"y"}}`)),
		"wrong secret":  signedHeaders([]Secret{b}, "evt_1", now, body),
		"stale":         signedHeaders([]Secret{a}, "evt_1", now.Add(-10*time.Minute), body),
		"future":        signedHeaders([]Secret{a}, "evt_1", now.Add(10*time.Minute), body),
	} {
		if err := whA.Verify(body, h); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	other := signedHeaders([]Secret{a}, "evt_1", now, body)
	other.Set(HeaderID, "evt_2") // the id is signed too
	if err := whA.Verify(body, other); err == nil {
		t.Error("changed id accepted")
	}
}

func TestParseSecret(t *testing.T) {
	for _, bad := range []string{"", "secret", "whsec_", "whsec_!!!", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 8)), "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65))} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) accepted", bad)
		}
	}
}

func TestNextDelay(t *testing.T) {
	for i := 1; i < len(DefaultSchedule); i++ {
		d, ok := NextDelay(nil, i, 0)
		lo, hi := DefaultSchedule[i]*9/10, DefaultSchedule[i]*11/10
		if !ok || d < lo || d > hi {
			t.Errorf("attempt %d: %v, want %v-%v", i, d, lo, hi)
		}
	}
	if _, ok := NextDelay(nil, len(DefaultSchedule), 0); ok {
		t.Error("schedule never ends")
	}
	if d, _ := NextDelay([]time.Duration{0, time.Second}, 1, time.Minute); d != time.Minute {
		t.Errorf("Retry-After not honoured: %v", d)
	}
	if d := retryAfter("Wed, 21 Oct 2015 07:28:00 GMT", time.Date(2015, 10, 21, 7, 27, 0, 0, time.UTC)); d != time.Minute {
		t.Errorf("HTTP-date Retry-After: %v", d)
	}
}

// receiver is a real HTTP endpoint that verifies every request with the
// reference library and records what it accepted.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	wh  *standardwebhooks.Webhook
	mu  sync.Mutex
	got []delivery
	// respond decides the answer to the n-th request (0-based).
	respond func(n int, w http.ResponseWriter, r *http.Request)
	n       int
}

type delivery struct {
	ID, Timestamp string
	Body          Payload
	At            time.Time
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{t: t, wh: verifier(t, secretA), respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := rc.wh.Verify(body, r.Header); err != nil {
			t.Errorf("receiver: signature refused: %v", err)
			http.Error(w, "bad signature", 401)
			return
		}
		var p Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("receiver: body: %v", err)
		}
		rc.mu.Lock()
		n := rc.n
		rc.n++
		rc.mu.Unlock()
		if rc.respond != nil {
			rc.respond(n, w, r)
		}
		rc.mu.Lock()
		rc.got = append(rc.got, delivery{ID: r.Header.Get(HeaderID), Timestamp: r.Header.Get(HeaderTimestamp), Body: p, At: time.Now()})
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

type fixture struct {
	db   *store.Badger
	disp *Dispatcher
	eps  map[string]*Endpoint
	mu   sync.Mutex
}

func newFixture(t *testing.T, eps map[string]*Endpoint, tune func(*Dispatcher)) *fixture {
	db, err := store.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, eps: eps}
	f.disp = &Dispatcher{Store: db, Poll: 20 * time.Millisecond, Endpoints: func(p string) (*Endpoint, Lookup) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.eps[p], Ready
	}}
	if tune != nil {
		tune(f.disp)
	}
	f.disp.Start()
	t.Cleanup(func() { f.disp.Stop(2 * time.Second); db.Close() })
	return f
}

var idSeq struct {
	sync.Mutex
	n int
}

// complete creates and completes an intent of profile, writing its event.
func (f *fixture) complete(t *testing.T, profile string) string {
	t.Helper()
	idSeq.Lock()
	idSeq.n++
	n := idSeq.n
	idSeq.Unlock()
	id := fmt.Sprintf("intent%06d", n)
	now := time.Now().UTC()
	in := &store.Intent{ID: id, Profile: profile, Bucket: "b", Key: "k/" + id, ContentType: "image/png", MaxSize: 10,
		Status: store.StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Minute), Metadata: json.RawMessage(`{"a":1}`)}
	if err := f.db.Create(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	out, err := f.db.Update(context.Background(), id, store.StatusPending, func(x *store.Intent) (store.Event, error) {
		x.Status, x.ObjectSize, x.ETag = store.StatusCompleted, 7, "etag"
		return store.Event{ID: fmt.Sprintf("evt_%06d", n), Type: store.EventCompleted, CreatedAt: now}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.disp.Kick()
	return out.EventID
}

func (f *fixture) waitState(t *testing.T, id string, want store.DeliveryState, within time.Duration) *store.Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ev, err := f.db.Event(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Delivery.State == want {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s: state %s after %v, want %s (%+v)", id, ev.Delivery.State, within, want, ev.Delivery)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func endpoint(url string, schedule ...time.Duration) *Endpoint {
	return &Endpoint{URL: url, Secrets: []Secret{must(ParseSecret(secretA))}, Timeout: 2 * time.Second, Schedule: schedule}
}

func must(s Secret, err error) Secret {
	if err != nil {
		panic(err)
	}
	return s
}
