package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// Quotas and rate limits per identity through the Caddy binary on
// versitygw; see docs/quotas.md.

// quotaCaddyfile has three profiles of one store: /q with max_pending 5,
// /r with a rate of 3 per minute per identity, and /anon (no identity)
// with a rate of 2 per minute per client IP.
func quotaCaddyfile(admin, site int, storage string) string {
	profile := func(name, extra string) string {
		return fmt.Sprintf(`
	handle /%[1]s* {
		direct_upload {
			profile %[1]s
			base_path /%[1]s
			bucket uploads
			region %[2]s
			endpoint %[3]s
			path_style
			access_key_id %[4]s
			secret_access_key %[5]s
			allowed_types image/png
			max_size 1MiB
			%[6]s
		}
	}`, name, s3srv.Region, s3srv.URL, s3srv.AccessKey, s3srv.SecretKey, extra)
	}
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	direct_upload {
		storage %s
	}
}
http://127.0.0.1:%d {
	bind 127.0.0.1
%s
%s
%s
}
`, admin, storage, site,
		profile("q", "identity {http.request.header.X-Test-User}\n\t\t\tmax_pending 5\n\t\t\tmax_reserved 100MiB\n\t\t\tmax_verified 1GiB per 1h\n\t\t\trate 1000/1m"),
		profile("r", "identity {http.request.header.X-Test-User}\n\t\t\trate 3/1m"),
		profile("anon", "rate 2/1m"))
}

// startQuota runs its own Caddy on quotaCaddyfile; it returns the site's
// URL and the admin address.
func startQuota(t *testing.T) (string, string) {
	t.Helper()
	site, _ := testkit.FreePort()
	admin, _ := testkit.FreePort()
	startSolo(t, quotaCaddyfile(admin, site, t.TempDir()), admin, nil)
	return fmt.Sprintf("http://127.0.0.1:%d", site), fmt.Sprintf("127.0.0.1:%d", admin)
}

// grantAs asks for a grant without failing the test (safe in goroutines).
func grantAs(url, user string, size int) (int, http.Header, map[string]any, error) {
	if user == "" {
		return grantWith(url, size)
	}
	return grantWith(url, size, "X-Test-User", user)
}

// grantWith asks for a grant with headers (name, value pairs).
func grantWith(url string, size int, headers ...string) (int, http.Header, map[string]any, error) {
	body, _ := json.Marshal(map[string]any{"content_type": "image/png", "size": size})
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return resp.StatusCode, resp.Header, nil, fmt.Errorf("answer %d is not JSON: %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header, out, nil
}

func errCode(body map[string]any) (string, string) {
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	return code, msg
}

func usageOf(t *testing.T, admin, profile, identity string) map[string]any {
	t.Helper()
	r := call(t, "GET", fmt.Sprintf("http://%s/direct_upload/usage?profile=%s&identity=%s", admin, profile, identity), nil)
	if r.Status != 200 {
		t.Fatalf("usage: %d %s", r.Status, r.Raw)
	}
	return r.Body
}

// TestQuotaConcurrentGrantsAtCap: 50 concurrent grants from one identity
// at max_pending 5 give exactly five 201s and 45 429 quota_exceeded; fails
// and completions give the capacity back; another identity is unaffected;
// the admin API and the metric show it.
func TestQuotaConcurrentGrantsAtCap(t *testing.T) {
	base, admin := startQuota(t)
	img := pngFile(t)
	const n = 50
	type result struct {
		status int
		body   map[string]any
		err    error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, body, err := grantAs(base+"/q", "alice", len(img))
			results[i] = result{status, body, err}
		}()
	}
	wg.Wait()
	var granted []response
	refused := 0
	for _, r := range results {
		switch code, msg := errCode(r.body); {
		case r.err != nil:
			t.Fatal(r.err)
		case r.status == 201:
			granted = append(granted, response{Status: 201, Body: r.body})
		case r.status == 429 && code == "quota_exceeded" && strings.HasPrefix(msg, "max_pending"):
			refused++
		default:
			t.Fatalf("unexpected answer %d %v", r.status, r.body)
		}
	}
	if len(granted) != 5 || refused != n-5 {
		t.Fatalf("%d granted, %d refused quota_exceeded; want exactly 5 and %d", len(granted), refused, n-5)
	}
	if u := usageOf(t, admin, "q", "alice"); u["pending"] != 5.0 || u["reserved_bytes"] != float64(5*len(img)) {
		t.Fatalf("usage: %v", u)
	}
	// Another identity is not affected.
	if status, _, body, err := grantAs(base+"/q", "bob", len(img)); err != nil || status != 201 {
		t.Fatalf("bob: %d %v %v", status, body, err)
	}

	// Two fails and one completion give three grants back, no more.
	alice := []string{"X-Test-User", "alice"}
	for _, g := range granted[:2] {
		if r := call(t, "POST", base+"/q/"+g.str("id")+"/fail", nil, alice...); r.Status != 200 {
			t.Fatalf("fail: %d %s", r.Status, r.Raw)
		}
	}
	if status, body := uploadForm(t, granted[2], "image/png", img); status != 201 {
		t.Fatalf("upload: %d %s", status, body)
	}
	if r := call(t, "POST", base+"/q/"+granted[2].str("id")+"/complete", nil, alice...); r.Status != 200 || r.str("status") != "completed" {
		t.Fatalf("complete: %d %s", r.Status, r.Raw)
	}
	u := usageOf(t, admin, "q", "alice")
	if u["pending"] != 2.0 || u["reserved_bytes"] != float64(2*len(img)) || u["verified_bytes"] != float64(len(img)) {
		t.Fatalf("usage after two fails and a completion: %v", u)
	}
	for i := range 3 {
		if status, _, body, err := grantAs(base+"/q", "alice", len(img)); err != nil || status != 201 {
			t.Fatalf("grant %d after release: %d %v %v", i+1, status, body, err)
		}
	}
	status, _, body, err := grantAs(base+"/q", "alice", len(img))
	if code, _ := errCode(body); err != nil || status != 429 || code != "quota_exceeded" {
		t.Fatalf("sixth pending grant: %d %v %v", status, body, err)
	}
	m := metricsText(t, admin)
	re := regexp.MustCompile(`direct_upload_grants_refused_total\{profile="q",reason="max_pending"\} (\d+)`)
	if got := re.FindStringSubmatch(m); got == nil || got[1] != strconv.Itoa(n-5+1) {
		t.Fatalf("refusal metric: %v, want %d\n%s", got, n-5+1, grepLines(m, "grants_refused"))
	}
}

// TestRateLimitRetryAfter: a burst over the rate is answered 429
// rate_limited with Retry-After; another identity is unaffected; routes
// without identity count per client IP.
func TestRateLimitRetryAfter(t *testing.T) {
	base, admin := startQuota(t)
	for i := range 3 {
		if status, _, body, err := grantAs(base+"/r", "carol", 10); err != nil || status != 201 {
			t.Fatalf("grant %d: %d %v %v", i+1, status, body, err)
		}
	}
	status, h, body, err := grantAs(base+"/r", "carol", 10)
	code, _ := errCode(body)
	ra, raErr := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || status != 429 || code != "rate_limited" || raErr != nil || ra < 1 || ra > 20 {
		t.Fatalf("fourth grant: %d %q Retry-After %q %v %v", status, code, h.Get("Retry-After"), body, err)
	}
	if status, _, body, err := grantAs(base+"/r", "dan", 10); err != nil || status != 201 {
		t.Fatalf("another identity: %d %v %v", status, body, err)
	}
	for i := range 2 {
		if status, _, body, err := grantAs(base+"/anon", "", 10); err != nil || status != 201 {
			t.Fatalf("anonymous grant %d: %d %v %v", i+1, status, body, err)
		}
	}
	status, h, body, err = grantAs(base+"/anon", "", 10)
	if code, _ := errCode(body); err != nil || status != 429 || code != "rate_limited" || h.Get("Retry-After") == "" {
		t.Fatalf("third anonymous grant: %d %v %v", status, body, err)
	}
	if r := call(t, "GET", "http://"+admin+"/direct_upload/usage?profile=anon&ip=127.0.0.1", nil); r.Status != 200 || r.Body["subject"] != "ip:127.0.0.1" {
		t.Fatalf("usage by ip: %d %s", r.Status, r.Raw)
	}
	m := metricsText(t, admin)
	for _, want := range []string{`direct_upload_grants_refused_total{profile="r",reason="rate"} 1`, `direct_upload_grants_refused_total{profile="anon",reason="rate"} 1`} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %s:\n%s", want, grepLines(m, "grants_refused"))
		}
	}
}

// TestExampleRefusesABurst: Caddyfile.example's limits refuse a burst of
// 200 concurrent grants from one user: exactly what max_pending (20 on
// the files profile) leaves is granted, the rest get 429, quota_exceeded
// or rate_limited. It runs as bob on files, where other tests leave at
// most a grant or two (TestHostileUppy; TestReloadWhileServing uses bob on
// images, and limits are per profile), and fails bob's grants at the end.
func TestExampleRefusesABurst(t *testing.T) {
	bob := login(t, "bob")
	room := 20 - int(usageOf(t, example.AdminAddr, "files", "bob")["pending"].(float64))
	const n = 200
	type result struct {
		status int
		body   map[string]any
		err    error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, body, err := grantWith(exampleURL+"/files", 100, bob...)
			results[i] = result{status, body, err}
		}()
	}
	wg.Wait()
	var ids []string
	codes := map[string]int{}
	for _, r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.status == 201 {
			id, _ := r.body["id"].(string)
			ids = append(ids, id)
			continue
		}
		code, _ := errCode(r.body)
		if r.status != 429 {
			t.Fatalf("unexpected answer %d %v", r.status, r.body)
		}
		codes[code]++
	}
	t.Cleanup(func() {
		for _, id := range ids {
			call(t, "POST", exampleURL+"/files/"+id+"/fail", nil, bob...)
		}
	})
	if len(ids) != room || codes["quota_exceeded"] == 0 || codes["rate_limited"] == 0 || codes["quota_exceeded"]+codes["rate_limited"] != n-room {
		t.Fatalf("%d granted, refusals %v; want exactly %d granted (max_pending 20 less bob's pending grants) and the rest quota_exceeded or rate_limited",
			len(ids), codes, room)
	}
	t.Logf("burst of %d: %d granted (%d already pending), refusals %v", n, len(ids), 20-room, codes)
}
