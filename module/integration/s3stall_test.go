package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// S3 stalls through the Caddy binary: S3 accepts connections and then
// answers nothing. Two ways: a TCP proxy in front of versitygw that stops
// forwarding (testkit.StallProxy), and SIGSTOP of a versitygw of the
// test's own (the kernel still accepts connections for a stopped
// process). The profile's s3_timeout is 2s.

const stallS3Timeout = 2 * time.Second

// stallBound is how long a call that waits for a stalled S3 may take:
// its s3_timeout and a margin for a shared, noisy machine.
const stallBound = stallS3Timeout + 8*time.Second

// stallMargin is how many goroutines above the baseline still count as
// "back": background work (a sweep's workers, the dispatcher's poll) comes
// and goes on its own. The counts are polled until they are back, so a
// passing burst only delays the check.
const stallMargin = 5

const stallCaddyfile = `{
	admin 127.0.0.1:{$ADMIN_PORT}
	direct_upload {
		storage {$STORE_DIR}
	}
}
http://127.0.0.1:{$SITE_PORT} {
	bind 127.0.0.1
	direct_upload {
		profile stall
		base_path /up
		bucket uploads
		endpoint {$S3_ENDPOINT}
		path_style
		access_key_id {env.S3_ACCESS}
		secret_access_key {env.S3_SECRET}
		allowed_types image/png
		identity {http.request.header.X-Test-User}
		s3_timeout 2s
	}
}
`

// newStallCaddy starts a Caddy whose profile's S3 endpoint is endpoint.
func newStallCaddy(t *testing.T, endpoint string) *hooks {
	t.Helper()
	dir := t.TempDir()
	site, _ := testkit.FreePort()
	admin, _ := testkit.FreePort()
	h := &hooks{url: fmt.Sprintf("http://127.0.0.1:%d/up", site), cf: filepath.Join(dir, "Caddyfile"), admin: fmt.Sprintf("127.0.0.1:%d", admin)}
	if err := os.WriteFile(h.cf, []byte(stallCaddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	h.env = []string{
		fmt.Sprintf("SITE_PORT=%d", site), fmt.Sprintf("ADMIN_PORT=%d", admin),
		"STORE_DIR=" + filepath.Join(dir, "intents"), "S3_ENDPOINT=" + endpoint,
		"S3_ACCESS=" + s3srv.AccessKey, "S3_SECRET=" + s3srv.SecretKey,
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

// goroutines reads the Caddy process's goroutine count from its admin
// endpoint's pprof.
func goroutines(t *testing.T, h *hooks) int {
	t.Helper()
	resp, err := apiClient.Get("http://" + h.AdminAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	var n int
	if _, err := fmt.Sscanf(string(first), "goroutine profile: total %d", &n); resp.StatusCode != 200 || err != nil {
		t.Fatalf("goroutine profile: %d %q: %v", resp.StatusCode, first, err)
	}
	return n
}

// timedCall is call with how long the answer took.
type timedCall struct {
	r       response
	took    time.Duration
	stuckAt int // the proxy's stuck requests when the answer came (-1: unknown)
}

// stall is one way of stalling S3.
type stall struct {
	stall, resume func()
	// stuck counts requests S3 has received and not answered during the
	// stall, or nil when that cannot be seen.
	stuck func() int
	// stuckOpen counts connections of such requests still open, or nil.
	stuckOpen func() int
}

// TestS3StallThroughProxy: a proxy between Caddy and versitygw stops
// forwarding, holding every connection open.
func TestS3StallThroughProxy(t *testing.T) {
	p, err := testkit.StartStallProxy(strings.TrimPrefix(s3srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	h := newStallCaddy(t, p.URL)
	runS3Stall(t, h, "proxy", stall{stall: p.Stall, resume: p.Resume, stuck: p.StuckRequests, stuckOpen: p.StuckOpen})
}

// TestS3StallSIGSTOP: the S3 server itself is stopped (SIGSTOP) and
// continued (SIGCONT). It is a versitygw of its own, on the same bucket
// directory layout, so no other test sees the stall.
func TestS3StallSIGSTOP(t *testing.T) {
	v, err := testkit.StartVersity(filepath.Join(t.TempDir(), "s3"), 0)
	if err != nil {
		t.Fatal(err)
	}
	cont := func() { _ = syscall.Kill(v.Pid(), syscall.SIGCONT) }
	t.Cleanup(func() { cont(); v.Stop(5 * time.Second) }) // never leave it stopped
	if err := v.CreateBucket(context.Background(), "uploads"); err != nil {
		t.Fatal(err)
	}
	h := newStallCaddy(t, v.URL)
	runS3Stall(t, h, "SIGSTOP", stall{
		stall: func() {
			if err := syscall.Kill(v.Pid(), syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
		},
		resume: cont,
	})
}

// stalledCompletes is how many completes wait for the stalled S3 at once:
// enough that their goroutines stand well above stallMargin, so a leak of
// them would show.
const stalledCompletes = 10

// runS3Stall: while S3 is stalled, grants work (presigning is local);
// complete answers 503 storage_timeout with Retry-After within its bound,
// and completes on other intents are not queued behind the first; nothing
// is decided; Caddy closes the connections it gave up on and its
// goroutines come back to the baseline. After the stall, complete
// succeeds.
func runS3Stall(t *testing.T, h *hooks, name string, s stall) {
	// Intents with their objects uploaded, and one completed to warm up
	// Caddy's S3 client (its pooled connections are in the baseline).
	var ids []string
	for i := 0; i < stalledCompletes; i++ {
		ids = append(ids, h.uploaded(t, false))
	}
	warm := h.uploaded(t, false)
	if r := call(t, "POST", h.url+"/"+warm+"/complete", nil, carol...); r.Status != 200 {
		t.Fatalf("warm-up complete: %d %s", r.Status, r.Raw)
	}
	base := goroutines(t, h)
	for i := 0; i < 2; i++ { // the quietest of three samples
		base = min(base, goroutines(t, h))
	}

	s.stall()
	stalled := true
	defer func() {
		if stalled {
			s.resume()
		}
	}()
	grants := 0
	for i := 0; i < 5; i++ {
		g := call(t, "POST", h.url, map[string]any{"content_type": "image/png", "filename": "x.png"}, carol...)
		if g.Status != 201 || g.str("url") == "" {
			t.Fatalf("grant during the stall: %d %s", g.Status, g.Raw)
		}
		grants++
	}

	complete := func(id string, out chan<- timedCall) {
		start := time.Now()
		req, _ := http.NewRequest("POST", h.url+"/"+id+"/complete", nil)
		req.Header.Set(carol[0], carol[1])
		cl := http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := cl.Do(req)
		tc := timedCall{took: time.Since(start), stuckAt: -1}
		if s.stuck != nil {
			tc.stuckAt = s.stuck()
		}
		if err != nil {
			tc.r = response{Status: -1, Raw: err.Error()}
		} else {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			tc.r = response{Status: resp.StatusCode, Raw: string(raw), Header: resp.Header}
			_ = jsonUnmarshal(raw, &tc.r.Body)
		}
		out <- tc
	}
	answers := make([]chan timedCall, len(ids))
	for i := range answers {
		answers[i] = make(chan timedCall, 1)
	}
	stuck0 := 0
	if s.stuck != nil {
		stuck0 = s.stuck()
	}
	// The first complete (A) goes first; once its read of the object is
	// at S3, unanswered, the others start.
	go complete(ids[0], answers[0])
	if s.stuck != nil {
		waitFor(t, "complete on A stuck at S3", stallBound, func() bool { return s.stuck() >= stuck0+1 })
	}
	for i := 1; i < len(ids); i++ {
		go complete(ids[i], answers[i])
	}
	peak := 0
	got := make([]timedCall, len(ids))
	for i := range answers {
		for done := false; !done; {
			select {
			case got[i] = <-answers[i]:
				done = true
			case <-time.After(20 * time.Millisecond):
				peak = max(peak, goroutines(t, h))
			}
		}
	}
	var slowest time.Duration
	for i, c := range got {
		expect(t, c.r, 503, "storage_timeout")
		if c.r.Header.Get("Retry-After") == "" {
			t.Errorf("complete %d: 503 storage_timeout without Retry-After", i)
		}
		if c.took > stallBound {
			t.Errorf("complete %d took %v, over its bound %v (s3_timeout %v)", i, c.took, stallBound, stallS3Timeout)
		}
		slowest = max(slowest, c.took)
	}
	if s.stuck != nil && got[0].stuckAt < stuck0+len(ids) {
		// Some complete's read was not at S3 while A's was: it waited
		// behind A.
		t.Errorf("when complete on A answered, S3 had %d of this test's %d reads stuck: the others were queued behind A", got[0].stuckAt-stuck0, len(ids))
	}
	// The count sees the calls in flight, so a leak of theirs would show.
	if peak <= base+stallMargin {
		t.Errorf("goroutines peaked at %d with %d calls waiting for S3, not above the baseline %d + %d: the count cannot see a leak", peak, len(ids), base, stallMargin)
	}
	// Nothing decided.
	for _, id := range ids {
		if r := call(t, "GET", h.url+"/"+id, nil, carol...); r.Status != 200 || r.str("status") != "pending" {
			t.Fatalf("intent %s after a timed-out complete: %d %s", id, r.Status, r.Raw)
		}
	}
	// Caddy gave up on the stuck requests: it closed their connections
	// and their goroutines ended, while S3 is still stalled.
	if s.stuckOpen != nil {
		waitFor(t, "Caddy closing the connections of its timed-out requests", stallBound, func() bool { return s.stuckOpen() == 0 })
	}
	during := 0
	waitFor(t, fmt.Sprintf("goroutines back within %d of the baseline %d while stalled", stallMargin, base), 15*time.Second, func() bool {
		during = goroutines(t, h)
		return during <= base+stallMargin
	})

	s.resume()
	stalled = false
	for _, id := range ids {
		r := call(t, "POST", h.url+"/"+id+"/complete", nil, carol...)
		if r.Status != 200 || r.str("status") != "completed" {
			t.Fatalf("complete on %s after the stall: %d %s", id, r.Status, r.Raw)
		}
	}
	if g := call(t, "POST", h.url, map[string]any{"content_type": "image/png"}, carol...); g.Status != 201 {
		t.Fatalf("grant after the stall: %d %s", g.Status, g.Raw)
	}
	after := 0
	waitFor(t, fmt.Sprintf("goroutines back within %d of the baseline %d after the stall", stallMargin, base), 15*time.Second, func() bool {
		after = goroutines(t, h)
		return after <= base+stallMargin
	})
	if h.Exited() {
		t.Fatalf("Caddy exited:\n%s", tail(h.Output(), 30))
	}
	concurrent := "not observable"
	if s.stuck != nil {
		concurrent = fmt.Sprintf("all %d reads at S3 at once", len(ids))
	}
	summary := fmt.Sprintf("S3 stall (%s, s3_timeout %v): %d grants during the stall 201; %d completes each 503 storage_timeout with Retry-After, slowest %v (%s); all pending, then completed after the stall; goroutines: baseline %d, peak %d, %d while still stalled, %d after",
		name, stallS3Timeout, grants, len(ids), slowest.Round(10*time.Millisecond), concurrent, base, peak, during, after)
	t.Log(summary)
	fmt.Println(summary)
	reportFaultMatrix(t, "s3-stall-"+strings.ToLower(name), summary)
}
