package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// Reliability of the request path through the real Caddy binary; see
// docs/reliability-request-path.md.

// soloCaddyfile is a config with one profile and a store of its own, for
// tests that load configs into a Caddy of their own. keys adds static
// credentials; extra is appended (another site).
func soloCaddyfile(admin, site int, storage string, keys bool, extra string) string {
	creds := ""
	if keys {
		creds = fmt.Sprintf("access_key_id %s\n\t\t\tsecret_access_key %s", s3srv.AccessKey, s3srv.SecretKey)
	}
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	direct_upload {
		storage %s
	}
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	handle /uploads* {
		direct_upload {
			bucket uploads
			region %s
			endpoint %s
			path_style
			%s
		}
	}
}
%s`, admin, storage, site, s3srv.Region, s3srv.URL, creds, extra)
}

// startSolo runs Caddy on the Caddyfile text cf; it returns the Caddy and
// the Caddyfile's path.
func startSolo(t *testing.T, cf string, admin int, env []string) (*testkit.Caddy, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	env = append(env, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	c, err := testkit.StartCaddy(path, fmt.Sprintf("127.0.0.1:%d", admin), env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(10 * time.Second) })
	return c, path
}

// loadCaddyfile posts a Caddyfile to the admin /load endpoint.
func loadCaddyfile(t *testing.T, admin int, cf string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/load", admin), strings.NewReader(cf))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, string(msg)
}

// TestFailedLoadKeepsAdminAPI: a /load that fails after the direct_upload
// app of the new config started (here: the new config's site port is
// taken, and its store is another directory) leaves the old config
// serving, and the admin API must keep answering for it. Caddy starts a
// config's apps in map order, so whether direct_upload starts before the
// failing http app varies: the load is tried 12 times (the chance that it
// never does is 1 in 4096).
func TestFailedLoadKeepsAdminAPI(t *testing.T) {
	admin, _ := testkit.FreePort()
	site, _ := testkit.FreePort()
	storeA := filepath.Join(t.TempDir(), "a")
	_, _ = startSolo(t, soloCaddyfile(admin, site, storeA, true, ""), admin, nil)
	siteURL := fmt.Sprintf("http://127.0.0.1:%d", site)
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", admin)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bad := soloCaddyfile(admin, site, filepath.Join(t.TempDir(), "b"), true,
		fmt.Sprintf("http://%s {\n\tbind 127.0.0.1\n\trespond \"taken\"\n}\n", busy.Addr()))

	check := func(when string) {
		t.Helper()
		r := callThroughReload(t, "POST", siteURL+"/uploads", `{"content_type":"image/png"}`)
		if r.Status != 201 {
			t.Fatalf("%s: grant %d %s", when, r.Status, r.Raw)
		}
		if l := call(t, "GET", adminURL+"/direct_upload/intents?status=pending&limit=5", nil); l.Status != 200 {
			t.Fatalf("%s: admin listing %d %s", when, l.Status, l.Raw)
		}
		if one := call(t, "GET", adminURL+"/direct_upload/intents/"+r.str("id"), nil); one.Status != 200 {
			t.Fatalf("%s: admin intent %d %s", when, one.Status, one.Raw)
		}
	}
	check("before")
	for i := 0; i < 12; i++ {
		if status, msg := loadCaddyfile(t, admin, bad); status == 200 {
			t.Fatalf("load %d with a taken port succeeded: %s", i, msg)
		}
		check(fmt.Sprintf("after failed load %d", i))
	}
}

// callThroughReload is call for a request right after a (failed) load: a
// connection the rolled-back config's server accepted on the shared
// listener while shutting down is closed without an answer, a transport
// error the client retries (as TestReloadWhileServing does). Only
// answers count; a few retries are allowed.
func callThroughReload(t *testing.T, method, url, body string) response {
	t.Helper()
	for i := 0; ; i++ {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := apiClient.Do(req)
		if err != nil {
			if i == 4 {
				t.Fatalf("%s %s: %v (5 tries)", method, url, err)
			}
			t.Logf("%s %s: %v; retrying", method, url, err)
			continue
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := response{Status: resp.StatusCode, Raw: string(raw), Header: resp.Header}
		_ = json.Unmarshal(raw, &r.Body)
		return r
	}
}

// credentialsTrap stands in for EC2 instance metadata and the container
// credentials endpoint, and counts connections to it. It returns the
// environment that points the AWS SDK at it (and nowhere else for
// credentials).
func credentialsTrap(t *testing.T) (*atomic.Int64, []string) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no credentials here", http.StatusNotFound)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	return &conns, []string{
		"AWS_EC2_METADATA_DISABLED=false",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + srv.URL,
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=" + srv.URL + "/creds",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=",
		"AWS_WEB_IDENTITY_TOKEN_FILE=",
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "config"),
	}
}

// TestProvisionMakesNoNetworkCall: with no static keys (the default
// credential chain, instance metadata included), `caddy validate` (which
// provisions every module) contacts no credentials endpoint; after start, only the
// background start-up checks and first use resolve them, which the trap
// then sees.
func TestProvisionMakesNoNetworkCall(t *testing.T) {
	conns, env := credentialsTrap(t)
	admin, _ := testkit.FreePort()
	site, _ := testkit.FreePort()
	cf := soloCaddyfile(admin, site, filepath.Join(t.TempDir(), "store"), false, "")
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := testkit.RunCaddy(env, "validate", "--config", path, "--adapter", "caddyfile")
	if err != nil || !strings.Contains(out, "Valid configuration") {
		t.Fatalf("validate without static keys: %v\n%s", err, out)
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("caddy validate made %d connections to the credentials endpoints", n)
	}

	c, path := startSolo(t, cf, admin, env)
	if out, err := c.Run("reload", "--config", path, "--adapter", "caddyfile", "--address", fmt.Sprintf("127.0.0.1:%d", admin), "--force"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	// Start (not Provision) runs the start-up checks in the background,
	// and they are the one thing that resolves credentials then: their
	// health names the missing keys and what to set.
	var health struct {
		Profiles map[string]struct {
			Checks []struct{ Check, Status, Fix string }
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for found := false; !found; {
		if time.Now().After(deadline) {
			t.Fatalf("the start-up checks never reported the missing credentials: %+v", health)
		}
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/direct_upload/health", admin)); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&health)
			resp.Body.Close()
		}
		for _, p := range health.Profiles {
			for _, c := range p.Checks {
				found = found || c.Check == "credentials" && c.Status == "FAIL" && strings.Contains(c.Fix, "access_key_id")
			}
		}
		if !found {
			time.Sleep(100 * time.Millisecond)
		}
	}
	// First use: a grant needs credentials, and the trap has none.
	r := call(t, "POST", fmt.Sprintf("http://127.0.0.1:%d/uploads", site), map[string]any{"content_type": "image/png"})
	if r.Status == 201 {
		t.Fatalf("granted without any credentials: %s", r.Raw)
	}
	if conns.Load() == 0 {
		t.Fatal("first use did not reach the trapped credentials endpoint: the trap does not work")
	}
}

// TestInvalidUTF8FilenameRefused: a filename with invalid UTF-8 is refused
// with invalid_filename, as README documents, not stored with U+FFFD in
// its place (JSON decoding would replace it before the check).
func TestInvalidUTF8FilenameRefused(t *testing.T) {
	r := call(t, "POST", extraURL+"/docs", "{\"filename\":\"report\xff.pdf\",\"content_type\":\"application/pdf\"}", "X-Test-User", "u1")
	expect(t, r, 400, "invalid_filename")
	r = call(t, "POST", extraURL+"/docs", `{"filename":"rapport é.pdf","content_type":"application/pdf"}`, "X-Test-User", "u1")
	if r.Status != 201 {
		t.Fatalf("valid UTF-8 filename: %d %s", r.Status, r.Raw)
	}
}
