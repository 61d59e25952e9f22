package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// lifeCaddyfile: 2-second policies (S3 reads the policy's expiry to the
// second, so a 1-second policy may have only a few milliseconds left), a sweeper every 200ms with a 300ms
// grace, webhooks to the test receiver. max_size is small, so the grace
// for slow large uploads (max_size at 1 MiB/s) stays under expiry_grace.
var lifeCaddyfile = strings.NewReplacer(
	"storage {$STORE_DIR}", "storage {$STORE_DIR}\n\t\tsweep_interval 200ms\n\t\texpiry_grace 300ms",
	"allowed_types image/png", "allowed_types image/png\n\t\texpires 2s\n\t\tmax_size 64KiB",
).Replace(hooksCaddyfile)

func granted(t testing.TB, h *hooks) response {
	t.Helper()
	g := call(t, "POST", h.url, map[string]any{"content_type": "image/png", "filename": "walkaway.png"}, carol...)
	if g.Status != 201 {
		t.Fatalf("grant: %d %s", g.Status, g.Raw)
	}
	return g
}

func eventsOf(rc *hookReceiver, id string) []string {
	var out []string
	for _, d := range rc.deliveries() {
		if d.IntentID == id {
			out = append(out, d.Type)
		}
	}
	return out
}

// TestSweeperSettlesWalkAways: clients that never call complete.
func TestSweeperSettlesWalkAways(t *testing.T) {
	rc := newHookReceiver(t)
	h := newHooksWith(t, rc.srv.URL, lifeCaddyfile)

	uploaded := granted(t, h) // uploads, never completes
	uploadForm(t, uploaded, "image/png", pngFile(t))
	never := granted(t, h) // never uploads
	evil := granted(t, h)  // uploads HTML declared as PNG, walks away
	uploadForm(t, evil, "image/png", []byte("<html><script>alert(1)</script>"))
	overwritten := granted(t, h) // completes, then overwrites with the same policy
	img := pngFile(t)
	uploadForm(t, overwritten, "image/png", img)
	if r := call(t, "POST", h.url+"/"+overwritten.str("id")+"/complete", nil, carol...); r.Status != 200 {
		t.Fatalf("complete: %d %s", r.Status, r.Raw)
	}
	if status, body := uploadForm(t, overwritten, "image/png", []byte("<svg onload=alert(1)>")); status != 201 {
		t.Fatalf("overwrite: %d %s", status, body)
	}

	want := map[string]string{
		uploaded.str("id"): "[upload.completed]",
		never.str("id"):    "[upload.expired]",
		evil.str("id"):     "[upload.rejected]",
		// Promotion: the overwrite lands at the staging key only, where
		// the re-check deletes it; the final object is never touched.
		overwritten.str("id"): "[upload.completed]",
	}
	waitFor(t, "the sweeper's webhooks", 15*time.Second, func() bool {
		for id, w := range want {
			if fmt.Sprint(eventsOf(rc, id)) != w {
				return false
			}
		}
		return true
	})
	waitFor(t, "the re-check to delete the overwrite at the staging key", 15*time.Second, func() bool {
		return !objectExists(t, overwritten.str("staging_key"))
	})
	for _, g := range []response{never, evil} {
		if objectExists(t, g.str("key")) || objectExists(t, g.str("staging_key")) {
			t.Errorf("%s: object left in the bucket", g.str("id"))
		}
	}
	if !objectExists(t, uploaded.str("key")) || objectExists(t, uploaded.str("staging_key")) {
		t.Error("the finalized upload's object is gone, or its staging object left")
	}
	if got := objectBytes(t, overwritten.str("key")); !bytes.Equal(got, img) {
		t.Fatalf("the overwrite changed the final object: %q", got)
	}
	st := call(t, "GET", h.url+"/"+overwritten.str("id"), nil, carol...)
	if st.str("status") != "completed" {
		t.Fatalf("overwritten: %s", st.Raw)
	}
}

// TestSweepWithS3Stopped: while S3 is down the sweeper decides nothing;
// once it is back, the upload is finalized.
func TestSweepWithS3Stopped(t *testing.T) {
	rc := newHookReceiver(t)
	h := newHooksWith(t, rc.srv.URL, lifeCaddyfile)
	g := granted(t, h)
	uploadForm(t, g, "image/png", pngFile(t))

	dir, port := s3srv.DataDir, s3srv.Port
	s3srv.Stop(5 * time.Second)
	restarted := false
	restart := func() {
		if restarted {
			return
		}
		restarted = true
		v, err := testkit.StartVersity(dir, port)
		if err != nil {
			t.Fatalf("restarting versitygw: %v", err)
		}
		s3srv = v
	}
	t.Cleanup(restart)

	// Past expiry + grace on the real clock (the binary's), then two more
	// sweeps that tried to read the object and failed.
	waitPast(t, g.str("expires_at"))
	verifyErrors := func() int {
		return metricValue(t, h.admin, `direct_upload_s3_errors_total{op="verify",profile="hooks"}`)
	}
	before := verifyErrors()
	waitFor(t, "two sweeps failing on S3 past expiry + grace", 60*time.Second, func() bool { return verifyErrors() >= before+2 })
	st := call(t, "GET", h.url+"/"+g.str("id"), nil, carol...)
	if st.str("status") != "pending" || len(eventsOf(rc, g.str("id"))) != 0 {
		t.Fatalf("decided while S3 was down: %s, events %v", st.Raw, eventsOf(rc, g.str("id")))
	}
	restart()
	waitFor(t, "finalization after S3 came back", 10*time.Second, func() bool {
		return fmt.Sprint(eventsOf(rc, g.str("id"))) == "[upload.completed]"
	})
}

// TestReloadsUnderLoadOneSweeper reloads 20 times while clients upload,
// some completing, some walking away: every intent ends with exactly one
// event per transition, each delivered once.
func TestReloadsUnderLoadOneSweeper(t *testing.T) {
	rc := newHookReceiver(t)
	h := newHooksWith(t, rc.srv.URL, lifeCaddyfile)
	var mu sync.Mutex
	var ids []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, ok := loadStep(h, i%2 == 0)
				if ok {
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		if out, err := h.Run("reload", "--config", h.cf, "--adapter", "caddyfile", "--address", h.admin, "--force"); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("reload %d: %v\n%s", i, err, out)
		}
		// Some uploads go through between two reloads.
		mu.Lock()
		n := len(ids)
		mu.Unlock()
		waitFor(t, "an upload between two reloads", 20*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(ids) > n
		})
	}
	close(stop)
	wg.Wait()
	if len(ids) < 20 {
		t.Fatalf("only %d uploads went through during the reloads", len(ids))
	}
	waitFor(t, "every upload settled and announced", 20*time.Second, func() bool { return len(rc.byIntent()) == len(ids) })
	deliveriesSettled(t, h, len(ids))
	perWebhook := map[string]int{}
	for _, d := range rc.deliveries() {
		perWebhook[d.WebhookID]++
	}
	for wid, n := range perWebhook {
		if n != 1 {
			t.Fatalf("event %s delivered %d times", wid, n)
		}
	}
	for _, id := range ids {
		if evs := eventsOf(rc, id); len(evs) != 1 || evs[0] != "upload.completed" {
			t.Fatalf("%s: events %v", id, evs)
		}
	}
	t.Logf("%d uploads across 20 reloads, %d deliveries (one the settle check's sentinel)", len(ids), len(rc.deliveries()))
}

// metricValue reads one sample of Caddy's metrics (0 if absent).
func metricValue(t *testing.T, admin, series string) int {
	t.Helper()
	for _, line := range strings.Split(metricsText(t, admin), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", series, line)
			}
			return int(f)
		}
	}
	return 0
}

// loadStep grants and uploads a PNG, then completes it or walks away. It
// reports false when a request failed (it may race a reload's closing of
// idle connections).
func loadStep(h *hooks, complete bool) (string, bool) {
	req, _ := http.NewRequest("POST", h.url, strings.NewReader(`{"content_type":"image/png"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(carol[0], carol[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		return "", false
	}
	var g response
	g.Status = 201
	if err := jsonUnmarshal(body, &g.Body); err != nil {
		return "", false
	}
	if status, _, err := testkit.PostForm(g.str("url"), g.fields(), "image/png", tinyPNG); err != nil || status != 201 {
		return g.str("id"), true // the grant stands; the sweeper settles it
	}
	if complete {
		req, _ := http.NewRequest("POST", h.url+"/"+g.str("id")+"/complete", nil)
		req.Header.Set(carol[0], carol[1])
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	return g.str("id"), true
}

var tinyPNG = func() []byte {
	var b bytes.Buffer
	b.Write([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"))
	return b.Bytes()
}()

// TestMetricsAndAdmin scrapes Caddy's metrics and walks the admin API.
func TestMetricsAndAdmin(t *testing.T) {
	rc := newHookReceiver(t)
	h := newHooksWith(t, rc.srv.URL, lifeCaddyfile)
	done := granted(t, h)
	uploadForm(t, done, "image/png", pngFile(t))
	if r := call(t, "POST", h.url+"/"+done.str("id")+"/complete", nil, carol...); r.Status != 200 {
		t.Fatalf("complete: %d %s", r.Status, r.Raw)
	}
	pending := granted(t, h)
	// Wait for the dispatcher to have recorded the delivery, not just for
	// the receiver to have it.
	waitFor(t, "the delivery recorded", 5*time.Second, func() bool {
		one := adminCall(t, h, "GET", "/direct_upload/intents/"+done.str("id"))
		dels, _ := one.Body["deliveries"].([]any)
		return len(dels) == 1 && dels[0].(map[string]any)["delivery"].(map[string]any)["state"] == "delivered"
	})

	resp, err := http.Get("http://" + h.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(raw)
	for _, want := range []string{
		`direct_upload_intents_created_total{profile="hooks"}`,
		`direct_upload_intents_finalized_total{profile="hooks",status="completed"}`,
		`direct_upload_webhook_deliveries_total{outcome="delivered",profile="hooks"}`,
		`direct_upload_presign_duration_seconds_count{profile="hooks"}`,
		`direct_upload_complete_duration_seconds_count{profile="hooks"}`,
		`direct_upload_outbox_pending `,
		`direct_upload_outbox_oldest_age_seconds `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	list := adminCall(t, h, "GET", "/direct_upload/intents?status=pending&profile=hooks")
	ins, _ := list.Body["intents"].([]any)
	found := false
	for _, x := range ins {
		found = found || x.(map[string]any)["id"] == pending.str("id")
	}
	if list.Status != 200 || !found {
		t.Fatalf("pending list: %d %s", list.Status, list.Raw)
	}
	one := adminCall(t, h, "GET", "/direct_upload/intents/"+done.str("id"))
	dels, _ := one.Body["deliveries"].([]any)
	if one.Status != 200 || len(dels) != 1 || dels[0].(map[string]any)["delivery"].(map[string]any)["state"] != "delivered" {
		t.Fatalf("intent with deliveries: %d %s", one.Status, one.Raw)
	}
	// A forced re-check of the pending intent finds its object once uploaded.
	uploadForm(t, pending, "image/png", pngFile(t))
	rec := adminCall(t, h, "POST", "/direct_upload/intents/"+pending.str("id")+"/recheck")
	if in, _ := rec.Body["intent"].(map[string]any); rec.Status != 200 || in["status"] != "completed" {
		t.Fatalf("recheck: %d %s", rec.Status, rec.Raw)
	}
	if r := adminCall(t, h, "GET", "/direct_upload/intents?status=bogus"); r.Status != 400 {
		t.Fatalf("bad status: %d", r.Status)
	}
	if r := adminCall(t, h, "GET", "/direct_upload/intents/nope"); r.Status != 404 {
		t.Fatalf("unknown intent: %d", r.Status)
	}
}

// TestRetentionPrunes: a settled intent whose event was delivered is pruned
// after the retention, so the store does not grow without bound.
func TestRetentionPrunes(t *testing.T) {
	rc := newHookReceiver(t)
	cf := strings.NewReplacer(
		"sweep_interval 200ms", "sweep_interval 200ms\n\t\tretention 1s",
	).Replace(lifeCaddyfile)
	h := newHooksWith(t, rc.srv.URL, cf)
	var ids []string
	for i := 0; i < 10; i++ {
		g := granted(t, h)
		if status, body := uploadForm(t, g, "image/png", pngFile(t)); status != 201 {
			t.Fatalf("upload: %d %s", status, body)
		}
		if r := call(t, "POST", h.url+"/"+g.str("id")+"/complete", nil, carol...); r.Status != 200 {
			t.Fatalf("complete: %d %s", r.Status, r.Raw)
		}
		ids = append(ids, g.str("id"))
	}
	waitFor(t, "every intent pruned after expiry, re-check and retention", 15*time.Second, func() bool {
		for _, id := range ids {
			if call(t, "GET", h.url+"/"+id, nil, carol...).Status != 404 {
				return false
			}
		}
		return true
	})
	if n := len(rc.byIntent()); n != len(ids) {
		t.Fatalf("%d of %d events delivered before pruning", n, len(ids))
	}
	list := adminCall(t, h, "GET", "/direct_upload/intents?status=completed")
	if ins, _ := list.Body["intents"].([]any); len(ins) != 0 {
		t.Fatalf("%d completed intents left in the store", len(ins))
	}
}

// TestStorePlateausUnderSteadyLoad: with a short retention, the intents
// kept stay bounded by the rate times their life (expiry, grace, retention),
// however long the load runs.
func TestStorePlateausUnderSteadyLoad(t *testing.T) {
	rc := newHookReceiver(t)
	cf := strings.NewReplacer(
		"sweep_interval 200ms", "sweep_interval 200ms\n\t\tretention 200ms",
	).Replace(lifeCaddyfile)
	h := newHooksWith(t, rc.srv.URL, cf)
	stored := func() int {
		n := 0
		for _, st := range []string{"pending", "completed", "rejected", "failed", "expired"} {
			for after := ""; ; {
				r := adminCall(t, h, "GET", "/direct_upload/intents?limit=1000&status="+st+"&after="+after)
				ins, _ := r.Body["intents"].([]any)
				n += len(ins)
				if after = r.str("next"); after == "" {
					break
				}
			}
		}
		return n
	}
	// Samples are taken by time, not by count: on a loaded machine a
	// listing may take longer than the second between samples.
	const seconds = 15
	type sample struct {
		at time.Duration
		n  int
	}
	show := func(ss []sample) string {
		var b strings.Builder
		for _, s := range ss {
			fmt.Fprintf(&b, " %.1fs:%d", s.at.Seconds(), s.n)
		}
		return b.String()
	}
	var samples []sample
	total := 0
	begin := time.Now()
	end := begin.Add(seconds * time.Second)
	next := begin
	for time.Now().Before(end) {
		if _, ok := loadStep(h, total%2 == 0); ok {
			total++
		}
		if time.Now().After(next) {
			samples = append(samples, sample{time.Since(begin), stored()})
			next = time.Now().Add(time.Second)
		}
	}
	t.Logf("%d uploads in %d s; intents stored, sampled about each second:%s", total, seconds, show(samples))
	// An intent lives about 3 s here (2 s policy, 0.3 s grace, the sweep,
	// 0.2 s retention), longer when the machine is busy: what is stored is
	// bounded by the rate times that, whatever the number of uploads, and
	// stops growing once the first ones are pruned. Without pruning it
	// would grow with the uploads: three times as many at the end as
	// between 4 and 7 s.
	maxIn := func(from, to time.Duration) (n int, seen bool) {
		for _, s := range samples {
			if s.at >= from && s.at < to {
				n, seen = max(n, s.n), true
			}
		}
		return n, seen
	}
	rate := float64(total) / seconds
	early, ok1 := maxIn(4*time.Second, 7*time.Second)
	late, ok2 := maxIn((seconds-4)*time.Second, seconds*time.Second+time.Minute)
	if !ok1 || !ok2 {
		t.Fatalf("too few samples to judge:%s", show(samples))
	}
	if float64(late) > rate*10 {
		t.Fatalf("store holds %d intents at %.1f uploads/s: more than 10 s worth (%s)", late, rate, show(samples))
	}
	if float64(late) > 1.5*float64(early) {
		t.Fatalf("no plateau: %d intents late against %d between 4 and 7 s (%s)", late, early, show(samples))
	}
}
