package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// doctorCaddyfile is one profile whose every deployment value comes from
// the environment.
const doctorCaddyfile = `{
	admin {$ADMIN}
	direct_upload {
		storage {$STORE_DIR}
	}
}
:{$SITE_PORT} {
	direct_upload {
		profile doc
		base_path /doc
		bucket {$BUCKET}
		endpoint {$S3_ENDPOINT}
		path_style
		access_key_id {env.S3_ACCESS}
		secret_access_key {env.S3_SECRET}
		webhook {$HOOK_URL} {
			secret {env.HOOK_SECRET}
		}
	}
	respond "site is up" 200
}
`

// signatureReceiver is a real webhook receiver that verifies signatures
// with the Standard Webhooks reference library.
func signatureReceiver(t *testing.T, secret string) string {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if wh.Verify(body, r.Header) != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/webhooks"
}

func doctorEnv(t *testing.T, sitePort int, bucketName, hookURL string) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	cf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(doctorCaddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	admin, _ := testkit.FreePort()
	return cf, []string{
		fmt.Sprintf("ADMIN=127.0.0.1:%d", admin), fmt.Sprintf("SITE_PORT=%d", sitePort),
		"STORE_DIR=" + filepath.Join(dir, "intents"), "BUCKET=" + bucketName, "S3_ENDPOINT=" + s3srv.URL,
		"S3_ACCESS=" + s3srv.AccessKey, "S3_SECRET=" + s3srv.SecretKey,
		"HOOK_URL=" + hookURL, "HOOK_SECRET=" + webhookSecret, "AWS_EC2_METADATA_DISABLED=true",
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
	}
}

// TestDoctorCheckCommand runs `caddy direct-upload check` (the real
// binary): a correct deployment passes with exit 0; a missing bucket and
// a receiver with a misspelt secret each fail with their fix, exit 1.
func TestDoctorCheckCommand(t *testing.T) {
	site, _ := testkit.FreePort()
	origin := fmt.Sprintf("http://localhost:%d", site) // what check derives from ":<port>"
	if err := s3srv.CreateBucket(context.Background(), "doctor-ok", origin); err != nil {
		t.Fatal(err)
	}

	cf, env := doctorEnv(t, site, "doctor-ok", signatureReceiver(t, webhookSecret))
	out, err := testkit.RunCaddy(env, "direct-upload", "check", "--config", cf, "--adapter", "caddyfile")
	if err != nil {
		t.Fatalf("check of a correct setup: %v\n%s", err, out)
	}
	t.Logf("correct setup:\n%s", out)
	for _, want := range []string{
		"ok   doc credentials: static keys in the config (access_key_id {env.S3_ACCESS})",
		"ok   doc addressing: path-style: " + s3srv.URL + "/doctor-ok",
		`ok   doc bucket: bucket "doctor-ok" exists`,
		"ok   doc grant: a presigned POST to " + s3srv.URL + "/doctor-ok was accepted, read back (HEAD) and deleted",
		"ok   doc cors: the bucket lets " + origin + " (from the site address",
		"ok   doc webhook:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	wrongSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("integration-test-webhook-secreT-32b"))
	cf, env = doctorEnv(t, site, "doctor-missing", signatureReceiver(t, wrongSecret))
	out, err = testkit.RunCaddy(env, "direct-upload", "check", "--config", cf, "--adapter", "caddyfile")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("check of a broken setup: %v, want exit status 1\n%s", err, out)
	}
	t.Logf("broken setup:\n%s", out)
	for _, want := range []string{
		`FAIL doc bucket: bucket "doctor-missing" does not exist at ` + s3srv.URL + " -> fix: create the bucket",
		"skip doc grant: not run: the bucket is not reachable",
		"FAIL doc webhook: ",
		"the receiver's secret is not this profile's -> fix: give the receiver exactly the profile's webhook secret (the same WEBHOOK_SECRET value",
		"2 check(s) failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	out, err = testkit.RunCaddy(nil, "direct-upload", "secret")
	if err != nil || !strings.HasPrefix(out, "whsec_") {
		t.Fatalf("secret: %v %q", err, out)
	}
	if _, err := standardwebhooks.NewWebhook(strings.TrimSpace(out)); err != nil {
		t.Fatalf("secret %q: %v", out, err)
	}
}

type healthAnswer struct {
	OK       bool `json:"ok"`
	Profiles map[string]struct {
		OK     bool `json:"ok"`
		Runs   int  `json:"runs"`
		Checks []struct {
			Check, Status, Detail, Fix string
		} `json:"checks"`
	} `json:"profiles"`
}

func health(t *testing.T, admin string) (int, healthAnswer) {
	t.Helper()
	resp, err := apiClient.Get("http://" + admin + "/direct_upload/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h healthAnswer
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("health: %d %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, h
}

func metricsText(t *testing.T, admin string) string {
	t.Helper()
	resp, err := apiClient.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}

// TestStartupChecksInBackground: a profile whose bucket is missing starts
// and serves; health and the metric show the failure with its fix, logged
// once; once the bucket exists, health turns ok without a restart.
func TestStartupChecksInBackground(t *testing.T) {
	site, _ := testkit.FreePort()
	name := fmt.Sprintf("doctor-late-%d", time.Now().UnixNano())
	cf, env := doctorEnv(t, site, name, signatureReceiver(t, webhookSecret))
	admin := strings.TrimPrefix(env[0], "ADMIN=")
	c, err := testkit.StartCaddy(cf, admin, env)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(10 * time.Second)

	r := call(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/", site), nil)
	if r.Status != 200 || r.Raw != "site is up" {
		t.Fatalf("site: %d %s", r.Status, r.Raw)
	}
	var h healthAnswer
	waitFor(t, "the bucket check to fail twice", 60*time.Second, func() bool {
		var status int
		status, h = health(t, admin)
		return status == http.StatusServiceUnavailable && h.Profiles["doc"].Runs >= 2
	})
	t.Logf("health while failing: %+v", h)
	bucketCheck := h.Profiles["doc"].Checks[2]
	if h.OK || bucketCheck.Check != "bucket" || bucketCheck.Status != "FAIL" ||
		!strings.Contains(bucketCheck.Detail, fmt.Sprintf("bucket %q does not exist", name)) || !strings.Contains(bucketCheck.Fix, "create the bucket") {
		t.Fatalf("health: %+v", h)
	}
	if m := metricsText(t, admin); !strings.Contains(m, `direct_upload_startup_check_ok{check="bucket",profile="doc"} 0`) ||
		!strings.Contains(m, `direct_upload_startup_check_ok{check="credentials",profile="doc"} 1`) {
		t.Errorf("metrics lack the failing check:\n%s", grepLines(m, "startup_check"))
	}
	if n := strings.Count(c.Output(), "start-up check failed"); n != 1 {
		t.Errorf("the failure was logged %d times, want once:\n%s", n, c.Output())
	}

	if err := s3srv.CreateBucket(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "health to turn ok", 90*time.Second, func() bool {
		status, h := health(t, admin)
		return status == http.StatusOK && h.OK && h.Profiles["doc"].OK
	})
	if m := metricsText(t, admin); !strings.Contains(m, `direct_upload_startup_check_ok{check="bucket",profile="doc"} 1`) {
		t.Errorf("metric not ok:\n%s", grepLines(m, "startup_check"))
	}
	if !strings.Contains(c.Output(), "start-up checks pass now") {
		t.Errorf("no log line says the checks pass now:\n%s", c.Output())
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
