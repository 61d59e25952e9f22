package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// The stack every test shares: S3, the example backend, and two Caddy
// processes: one runs Caddyfile.example unchanged, the other a test
// Caddyfile with extra profiles (short expiry, small sizes, text types).
var (
	s3srv      *testkit.Versity
	backend    *testkit.Proc
	backendURL string
	example    *testkit.Caddy
	exampleURL string
	exampleEnv []string
	extra      *testkit.Caddy
	extraURL   string
	tmp        string
	// webhookSecret signs the example's webhooks; the backend verifies.
	webhookSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("integration-test-webhook-secret-32b"))
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration setup:", err)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	if tmp, err = os.MkdirTemp("", "direct-upload-it-*"); err != nil {
		return 1, err
	}
	defer os.RemoveAll(tmp)
	for _, bin := range []string{testkit.Bin("CADDY_BIN", "caddy"), testkit.Bin("BACKEND_BIN", "backend"), testkit.Bin("VERSITYGW_BIN", "versitygw")} {
		if _, err := os.Stat(bin); err != nil {
			return 1, fmt.Errorf("%s is missing: run `make build tools` (make test does)", bin)
		}
	}

	if s3srv, err = testkit.StartVersity(filepath.Join(tmp, "s3"), 0); err != nil {
		return 1, err
	}
	// A test may restart S3 (s3srv then names the new process): stop
	// whichever runs at the end.
	defer func() { s3srv.Stop(5 * time.Second) }()
	if err := s3srv.CreateBucket(context.Background(), "uploads"); err != nil {
		return 1, err
	}

	bport, _ := testkit.FreePort()
	backendURL = fmt.Sprintf("http://127.0.0.1:%d", bport)
	if backend, err = testkit.Start([]string{"WEBHOOK_SECRET=" + webhookSecret}, testkit.Bin("BACKEND_BIN", "backend"), "-addr", fmt.Sprintf("127.0.0.1:%d", bport)); err != nil {
		return 1, err
	}
	defer backend.Stop(5 * time.Second)
	if err := testkit.WaitHTTP(backendURL+"/healthz", 200, 10*time.Second); err != nil {
		return 1, fmt.Errorf("backend: %w\n%s", err, backend.Output())
	}

	if example, exampleURL, exampleEnv, err = startExample(filepath.Join(tmp, "example")); err != nil {
		return 1, err
	}
	defer example.Stop(10 * time.Second)
	if extra, extraURL, err = startExtra(filepath.Join(tmp, "extra")); err != nil {
		return 1, err
	}
	defer extra.Stop(10 * time.Second)

	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- example caddy output (tail)\n%s\n", tail(example.Output(), 40))
		fmt.Fprintf(os.Stderr, "--- extra caddy output (tail)\n%s\n", tail(extra.Output(), 40))
	}
	return code, nil
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func startExample(dir string) (*testkit.Caddy, string, []string, error) {
	site, _ := testkit.FreePort()
	admin, _ := testkit.FreePort()
	env := []string{
		fmt.Sprintf("SITE_ADDRESS=:%d", site),
		fmt.Sprintf("ADMIN_ADDRESS=127.0.0.1:%d", admin),
		"BACKEND_URL=" + backendURL,
		"S3_ENDPOINT=" + s3srv.URL,
		"S3_BUCKET=uploads",
		"AWS_REGION=" + s3srv.Region,
		"AWS_ACCESS_KEY_ID=" + s3srv.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3srv.SecretKey,
		"WEBHOOK_SECRET=" + webhookSecret,
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
	}
	c, err := testkit.StartCaddy(filepath.Join(testkit.RepoRoot(), "Caddyfile.example"), fmt.Sprintf("127.0.0.1:%d", admin), env)
	return c, fmt.Sprintf("http://127.0.0.1:%d", site), env, err
}

// extraCaddyfile has profiles the example does not: identity taken from a
// header directly (no forward_auth), short expiry, small sizes, text types,
// Content-Disposition.
const extraCaddyfile = `{
	admin 127.0.0.1:{$ADMIN_PORT}
	direct_upload {
		storage {$STORE_DIR}
	}
}
http://127.0.0.1:{$SITE_PORT} {
	bind 127.0.0.1
	handle /small* {
		direct_upload {
			profile small
			base_path /small
			bucket uploads
			endpoint {$S3_ENDPOINT}
			path_style
			access_key_id {env.S3_ACCESS}
			secret_access_key {env.S3_SECRET}
			key small/{identity}/{id}{ext}
			allowed_types image/png text/plain
			max_size 1KiB
			expires 2s
			max_metadata 64B
			identity {http.request.header.X-Test-User}
			content_disposition attachment
		}
	}
	handle /docs* {
		direct_upload {
			profile docs
			base_path /docs
			bucket uploads
			endpoint {$S3_ENDPOINT}
			path_style
			access_key_id {env.S3_ACCESS}
			secret_access_key {env.S3_SECRET}
			allowed_types application/pdf text/plain
			identity {http.request.header.X-Test-User}
		}
	}
	handle /put* {
		direct_upload {
			profile put
			base_path /put
			bucket uploads
			endpoint {$S3_ENDPOINT}
			path_style
			access_key_id {env.S3_ACCESS}
			secret_access_key {env.S3_SECRET}
			key put/{id}{ext}
			method put
		}
	}
	respond "not an upload route" 404
}
`

func startExtra(dir string) (*testkit.Caddy, string, error) {
	site, _ := testkit.FreePort()
	admin, _ := testkit.FreePort()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	cf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(extraCaddyfile), 0o644); err != nil {
		return nil, "", err
	}
	env := []string{
		fmt.Sprintf("SITE_PORT=%d", site), fmt.Sprintf("ADMIN_PORT=%d", admin),
		"STORE_DIR=" + filepath.Join(dir, "intents"), "S3_ENDPOINT=" + s3srv.URL,
		"S3_ACCESS=" + s3srv.AccessKey, "S3_SECRET=" + s3srv.SecretKey,
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
	}
	c, err := testkit.StartCaddy(cf, fmt.Sprintf("127.0.0.1:%d", admin), env)
	return c, fmt.Sprintf("http://127.0.0.1:%d", site), err
}

// apiClient opens a connection per request: the tests reload and restart
// Caddy, and a kept-alive connection that the server closes under a reload
// would fail the next request on it (a client-side race, not a server
// error; TestReloadWhileServing counts those separately).
var apiClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// response is a decoded JSON answer.
type response struct {
	Status int
	Body   map[string]any
	Raw    string
	Header http.Header
}

func (r response) str(k string) string { s, _ := r.Body[k].(string); return s }

func (r response) code() string {
	e, _ := r.Body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r response) fields() map[string]string {
	out := map[string]string{}
	f, _ := r.Body["fields"].(map[string]any)
	for k, v := range f {
		out[k], _ = v.(string)
	}
	return out
}

// call sends a request with optional headers (name, value pairs) and a JSON
// body (a string is sent as is).
func call(t testing.TB, method, url string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Raw: string(raw), Header: resp.Header}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// login returns a bearer header pair for a demo user of the backend.
func login(t testing.TB, user string) []string {
	t.Helper()
	r := call(t, "POST", backendURL+"/login", map[string]string{"user": user}, "Accept", "application/json")
	tok := r.str("token")
	if r.Status != 200 || tok == "" {
		t.Fatalf("login %s: %d %s", user, r.Status, r.Raw)
	}
	return []string{"Authorization", "Bearer " + tok}
}

func expect(t testing.TB, r response, status int, code string) {
	t.Helper()
	if r.Status != status || r.code() != code {
		t.Fatalf("got %d %q, want %d %q: %s", r.Status, r.code(), status, code, r.Raw)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
