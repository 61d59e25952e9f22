package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// The opt-in malware scan through the real Caddy binary, versitygw and a
// real clamd (Debian's clamav-daemon, `make clamav`) started on a free
// port with a locally written signature database.

// scanCaddyfile is hooksCaddyfile with the scan on, against clamdURL,
// plus extra lines in the profile.
func scanCaddyfile(base, clamdURL, extra string) string {
	return strings.Replace(base, "allowed_types image/png",
		"allowed_types image/png\n\t\tscan clamd "+clamdURL+extra, 1)
}

func startClamd(t *testing.T, dir string, port int) *testkit.Clamd {
	t.Helper()
	start := time.Now()
	c, err := testkit.StartClamd(dir, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("clamd answered PING %v after start", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if !c.Exited() {
			c.Stop(10 * time.Second)
		}
	})
	return c
}

// infectedPNG is a valid PNG (it passes every other check) with the test
// signature's marker after its end.
func infectedPNG(t *testing.T) []byte {
	return append(pngFile(t), []byte("\n"+testkit.ClamdMarker+"\n")...)
}

func (h *hooks) grantUpload(t *testing.T, data []byte) response {
	t.Helper()
	g := call(t, "POST", h.url, map[string]any{"content_type": "image/png", "filename": "x.png", "size": len(data)}, carol...)
	if g.Status != 201 {
		t.Fatalf("grant: %d %s", g.Status, g.Raw)
	}
	if status, body := uploadForm(t, g, "image/png", data); status != 201 {
		t.Fatalf("upload: %d %s", status, body)
	}
	return g
}

// TestScanWithClamd: a clean file completes (scan "clean"); a file with
// the test signature is quarantined: upload.quarantined is delivered, the
// object is gone from its keys and is under quarantine/ with its bytes;
// with the scanner stopped, complete answers 409 scan_pending with
// Retry-After and the upload stays pending (GET shows scanning, no
// webhook) until the scanner is back, when a retried complete finishes it.
func TestScanWithClamd(t *testing.T) {
	cl := startClamd(t, t.TempDir(), 0)
	rc := newHookReceiver(t)
	h := newHooksWith(t, rc.srv.URL, scanCaddyfile(hooksCaddyfile, cl.URL, ""))

	// Clean.
	clean := h.grantUpload(t, pngFile(t))
	r := call(t, "POST", h.url+"/"+clean.str("id")+"/complete", nil, carol...)
	if r.Status != 200 || r.str("status") != "completed" || r.str("scan") != "clean" {
		t.Fatalf("clean complete: %d %s", r.Status, r.Raw)
	}
	if !objectExists(t, clean.str("key")) {
		t.Fatal("the clean object is not at its key")
	}

	// Infected.
	bad := infectedPNG(t)
	inf := h.grantUpload(t, bad)
	r = call(t, "POST", h.url+"/"+inf.str("id")+"/complete", nil, carol...)
	if r.Status != 422 || r.code() != "upload_rejected" || r.str("reason") != "malware_found" || r.str("threat") != testkit.ClamdSignature {
		t.Fatalf("infected complete: %d %s", r.Status, r.Raw)
	}
	if !strings.Contains(r.str("detail"), testkit.ClamdSignature) {
		t.Errorf("detail does not name the signature: %s", r.Raw)
	}
	waitFor(t, "upload.quarantined delivered", 20*time.Second, func() bool {
		return fmt.Sprint(eventsOf(rc, inf.str("id"))) == "[upload.quarantined]"
	})
	if objectExists(t, inf.str("key")) || objectExists(t, inf.str("staging_key")) {
		t.Fatal("the infected object is still at its key or staging key")
	}
	if got := objectBytes(t, "quarantine/"+inf.str("key")); !bytes.Equal(got, bad) {
		t.Fatalf("quarantined object has %d bytes, want the %d uploaded", len(got), len(bad))
	}
	st := call(t, "GET", h.url+"/"+inf.str("id"), nil, carol...)
	if st.str("status") != "rejected" || st.str("scan") != "found" {
		t.Fatalf("infected intent: %s", st.Raw)
	}

	// A larger file, streamed in many chunks, the marker near its end.
	big := append(pngFile(t), bytes.Repeat([]byte("0123456789abcdef"), 3<<16)...) // +3 MiB
	big = append(big, []byte(testkit.ClamdMarker)...)
	bg := h.grantUpload(t, big)
	r = call(t, "POST", h.url+"/"+bg.str("id")+"/complete", nil, carol...)
	if r.Status != 422 || r.str("reason") != "malware_found" {
		t.Fatalf("big infected complete: %d %s", r.Status, r.Raw)
	}
	if got := objectBytes(t, "quarantine/"+bg.str("key")); !bytes.Equal(got, big) {
		t.Fatalf("quarantined big object has %d bytes, want %d", len(got), len(big))
	}

	// The scanner stops: fail-closed holds the upload.
	dir, port := cl.Dir, cl.Port
	cl.Stop(10 * time.Second)
	held := h.grantUpload(t, pngFile(t))
	for range 2 { // and again: still nothing decided
		r = call(t, "POST", h.url+"/"+held.str("id")+"/complete", nil, carol...)
		if r.Status != 409 || r.code() != "scan_pending" {
			t.Fatalf("complete with the scanner down: %d %s", r.Status, r.Raw)
		}
		if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Fatalf("scan_pending without a Retry-After: %q", r.Header.Get("Retry-After"))
		}
	}
	st = call(t, "GET", h.url+"/"+held.str("id"), nil, carol...)
	if st.str("status") != "pending" || st.Body["scanning"] != true {
		t.Fatalf("held intent: %s", st.Raw)
	}
	if objectExists(t, held.str("key")) {
		t.Fatal("the held upload was promoted to its final key unscanned")
	}

	// The scanner returns: a retried complete finishes it.
	startClamd(t, dir, port)
	r = call(t, "POST", h.url+"/"+held.str("id")+"/complete", nil, carol...)
	if r.Status != 200 || r.str("status") != "completed" || r.str("scan") != "clean" || r.Body["scanning"] != nil {
		t.Fatalf("complete after the scanner returned: %d %s", r.Status, r.Raw)
	}
	waitFor(t, "upload.completed of the held upload", 20*time.Second, func() bool {
		return fmt.Sprint(eventsOf(rc, held.str("id"))) == "[upload.completed]"
	})
	if fmt.Sprint(eventsOf(rc, clean.str("id"))) != "[upload.completed]" {
		t.Errorf("clean upload's events: %v", eventsOf(rc, clean.str("id")))
	}
}

// TestScanSweeperRetriesHeldUpload: a client completes while the scanner
// is down and walks away; the sweeper, after the policy expired, tries
// the scan again and again without completing it; once the scanner is
// back, the sweeper completes it. scan_hit delete: an infected upload the
// sweeper finds is deleted (nothing under quarantine/).
func TestScanSweeperRetriesHeldUpload(t *testing.T) {
	clamdDir := t.TempDir()
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	clamdURL := fmt.Sprintf("tcp://127.0.0.1:%d", port) // nothing listens yet
	rc := newHookReceiver(t)
	h := newHooksWith(t, rc.srv.URL, scanCaddyfile(lifeCaddyfile, clamdURL, "\n\t\tscan_hit delete\n\t\tscan_timeout 20s"))

	held := h.grantUpload(t, pngFile(t))
	r := call(t, "POST", h.url+"/"+held.str("id")+"/complete", nil, carol...)
	if r.Status != 409 || r.code() != "scan_pending" {
		t.Fatalf("complete with the scanner down: %d %s", r.Status, r.Raw)
	}
	bad := infectedPNG(t)
	inf := h.grantUpload(t, bad) // never completed by its client

	// The sweeper tries both after expiry; each attempt counts pending.
	waitFor(t, "the sweeper to try the scan several times", 30*time.Second, func() bool {
		return scansCounted(t, h, "pending") >= 5
	})
	for _, g := range []response{held, inf} {
		st := call(t, "GET", h.url+"/"+g.str("id"), nil, carol...)
		if st.str("status") != "pending" || st.Body["scanning"] != true {
			t.Fatalf("held intent after sweeps: %s", st.Raw)
		}
		if ev := eventsOf(rc, g.str("id")); len(ev) != 0 {
			t.Fatalf("events for a held upload: %v", ev)
		}
	}

	startClamd(t, clamdDir, port)
	waitFor(t, "the sweeper to finish both uploads", 30*time.Second, func() bool {
		return fmt.Sprint(eventsOf(rc, held.str("id"))) == "[upload.completed]" &&
			fmt.Sprint(eventsOf(rc, inf.str("id"))) == "[upload.quarantined]"
	})
	st := call(t, "GET", h.url+"/"+held.str("id"), nil, carol...)
	if st.str("status") != "completed" || st.str("scan") != "clean" {
		t.Fatalf("held intent: %s", st.Raw)
	}
	st = call(t, "GET", h.url+"/"+inf.str("id"), nil, carol...)
	if st.str("status") != "rejected" || st.str("reason") != "malware_found" {
		t.Fatalf("infected intent: %s", st.Raw)
	}
	if objectExists(t, inf.str("key")) || objectExists(t, inf.str("staging_key")) || objectExists(t, "quarantine/"+inf.str("key")) {
		t.Fatal("scan_hit delete left the infected object somewhere")
	}
	if !objectExists(t, held.str("key")) {
		t.Fatal("the completed upload is not at its key")
	}
}

var scansRe = regexp.MustCompile(`direct_upload_scans_total\{profile="hooks",result="(\w+)"\} (\d+)`)

// scansCounted reads direct_upload_scans_total for a result.
func scansCounted(t *testing.T, h *hooks, result string) int {
	t.Helper()
	resp, err := http.Get("http://" + h.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range scansRe.FindAllStringSubmatch(string(raw), -1) {
		if m[1] == result {
			n, _ := strconv.Atoi(m[2])
			return n
		}
	}
	return 0
}

// TestScanOverStreamMaxLengthRejected: the real clamd refuses a stream
// over its StreamMaxLength (8 MiB in the test's clamd.conf) while the
// sidecar is still sending; under fail-closed the upload is rejected
// with scan_refused (it would be refused on every retry), never held
// forever and never completed. This Caddy reaches clamd over its Unix
// socket (scan clamd unix://...).
func TestScanOverStreamMaxLengthRejected(t *testing.T) {
	cl := startClamd(t, t.TempDir(), 0)
	rc := newHookReceiver(t)
	h := newHooksWith(t, rc.srv.URL, scanCaddyfile(hooksCaddyfile, cl.SocketURL, ""))

	// A clean file completes over the socket too.
	clean := h.grantUpload(t, pngFile(t))
	if r := call(t, "POST", h.url+"/"+clean.str("id")+"/complete", nil, carol...); r.Status != 200 || r.str("scan") != "clean" {
		t.Fatalf("clean complete over the Unix socket: %d %s", r.Status, r.Raw)
	}

	huge := append(pngFile(t), bytes.Repeat([]byte("z"), 9<<20)...)
	g := h.grantUpload(t, huge)
	r := call(t, "POST", h.url+"/"+g.str("id")+"/complete", nil, carol...)
	if r.Status != 422 || r.code() != "upload_rejected" || r.str("reason") != "scan_refused" {
		t.Fatalf("complete over StreamMaxLength: %d %s", r.Status, r.Raw)
	}
	if !strings.Contains(r.str("detail"), "size limit") {
		t.Errorf("detail does not say why: %s", r.Raw)
	}
	waitFor(t, "upload.rejected delivered", 20*time.Second, func() bool {
		return fmt.Sprint(eventsOf(rc, g.str("id"))) == "[upload.rejected]"
	})
	if objectExists(t, g.str("key")) || objectExists(t, g.str("staging_key")) {
		t.Fatal("the refused object was left in the bucket")
	}
}
