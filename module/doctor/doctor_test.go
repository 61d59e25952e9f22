package doctor

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

const origin = "http://site.test:8080"

var (
	secretA = "whsec_" + base64.StdEncoding.EncodeToString([]byte("doctor-test-webhook-secret-A-32b"))
	secretB = "whsec_" + base64.StdEncoding.EncodeToString([]byte("doctor-test-webhook-secret-B-32b"))
)

var s3srv *testkit.Versity

func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	dir, err := os.MkdirTemp("", "doctor-test-*")
	if err != nil {
		panic(err)
	}
	s3srv, err = testkit.StartVersity(filepath.Join(dir, "s3"), 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	if err := s3srv.CreateBucket(ctx, "uploads", origin); err == nil {
		err = s3srv.CreateBucket(ctx, "nocors")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		s3srv.Stop(5 * time.Second)
		os.Exit(1)
	}
	code := m.Run()
	s3srv.Stop(5 * time.Second)
	os.RemoveAll(dir)
	os.Exit(code)
}

// receiver is a real HTTP webhook receiver that verifies signatures with
// the Standard Webhooks reference library and the given secret.
func receiver(t *testing.T, secret string) *httptest.Server {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func target(t *testing.T, hookSecret string) Target {
	t.Helper()
	sec, err := webhook.ParseSecret(secretA)
	if err != nil {
		t.Fatal(err)
	}
	return Target{
		Profile: "images",
		Bucket: bucket.Config{Bucket: "uploads", Region: s3srv.Region, Endpoint: s3srv.URL, PathStyle: true,
			AccessKeyID: s3srv.AccessKey, SecretAccessKey: s3srv.SecretKey},
		Webhook: &webhook.Endpoint{URL: receiver(t, hookSecret).URL + "/webhooks", Secrets: []webhook.Secret{sec}, Timeout: 5 * time.Second},
		Origin:  origin,
	}
}

func byCheck(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Check] = r
	}
	return m
}

// TestCorrectSetupPasses: a bucket with CORS for the site, right keys,
// path-style, and a receiver with the same secret: every check is ok.
func TestCorrectSetupPasses(t *testing.T) {
	rs := Run(context.Background(), target(t, secretA))
	want := []string{CheckCredentials, CheckAddressing, CheckBucket, CheckGrant, CheckCORS, CheckWebhook}
	if len(rs) != len(want) {
		t.Fatalf("got %d results: %v", len(rs), rs)
	}
	for i, r := range rs {
		if r.Check != want[i] || r.Status != OK || r.Fix != "" {
			t.Errorf("result %d: %v", i, r)
		}
	}
	if c := byCheck(rs)[CheckCredentials].Detail; !strings.Contains(c, "static keys in the config") {
		t.Errorf("credentials: %s", c)
	}
	// The test upload is gone: the check leaves nothing in the bucket.
	out, err := s3srv.Client().ListObjectsV2(context.Background(), &s3ListInput)
	if err != nil || len(out.Contents) != 0 {
		t.Errorf("bucket not empty after check: %v %v", out, err)
	}
}

// TestMistakes: each deployment mistake fails its check with its fix;
// the checks that depend on it are skipped, not failed.
func TestMistakes(t *testing.T) {
	free, _ := testkit.FreePort()
	for _, tc := range []struct {
		name        string
		change      func(*Target)
		hookSecret  string
		check       string
		status      Status
		detail, fix string
	}{
		{"wrong endpoint", func(t *Target) { t.Bucket.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", free) }, secretA,
			CheckBucket, Fail, "cannot reach the endpoint http://127.0.0.1:", "fix endpoint"},
		{"missing bucket", func(t *Target) { t.Bucket.Bucket = "no-such-bucket" }, secretA,
			CheckBucket, Fail, `bucket "no-such-bucket" does not exist`, "create the bucket"},
		{"wrong secret key", func(t *Target) { t.Bucket.SecretAccessKey = "wrong-secret" }, secretA,
			CheckBucket, Fail, "secret access key is wrong", "fix secret_access_key"},
		{"unknown access key", func(t *Target) { t.Bucket.AccessKeyID = "nobody" }, secretA,
			CheckBucket, Fail, "does not know the access key", "fix access_key_id"},
		{"virtual-host on a local endpoint", func(t *Target) { t.Bucket.PathStyle = false }, secretA,
			CheckAddressing, Fail, "virtual-host addressing on the local endpoint", "add path_style"},
		{"one key only", func(t *Target) { t.Bucket.SecretAccessKey = "" }, secretA,
			CheckCredentials, Fail, "secret_access_key is empty", "give both access_key_id and secret_access_key"},
		{"misspelt webhook secret", func(*Target) {}, secretB,
			CheckWebhook, Fail, "rejected a signed test event (HTTP 401)", "WEBHOOK_SECRET"},
		{"webhook not listening", func(t *Target) { t.Webhook.URL = fmt.Sprintf("http://127.0.0.1:%d/hook", free) }, secretA,
			CheckWebhook, Fail, "does not answer", "fix the webhook URL"},
		{"no CORS", func(t *Target) { t.Bucket.Bucket = "nocors" }, secretA,
			CheckCORS, Fail, "no CORS configuration", "AllowedOrigins [\"" + origin + "\"]"},
		{"CORS for another origin", func(t *Target) { t.Origin = "https://elsewhere.example" }, secretA,
			CheckCORS, Fail, "no CORS rule of the bucket lets https://elsewhere.example POST", "add a CORS rule"},
		{"no webhook", func(t *Target) { t.Webhook = nil }, secretA,
			CheckWebhook, Warn, "no webhook configured", "add a webhook block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := target(t, tc.hookSecret)
			tc.change(&tg)
			rs := Run(context.Background(), tg)
			r := byCheck(rs)[tc.check]
			t.Log(r)
			if r.Status != tc.status || !strings.Contains(r.Detail, tc.detail) || !strings.Contains(r.Fix, tc.fix) {
				t.Fatalf("%s = %v\nwant %s, detail ~ %q, fix ~ %q", tc.check, r, tc.status, tc.detail, tc.fix)
			}
			if Failed(rs) != (tc.status == Fail) {
				t.Errorf("Failed = %v: %v", Failed(rs), rs)
			}
			for _, o := range rs {
				if o.Status == Fail && o.Check != tc.check {
					t.Errorf("another check failed too: %v", o)
				}
			}
		})
	}
}

// TestCredentialSources: keys from the environment are named as such, and
// no credentials at all names both config settings and both variables.
func TestCredentialSources(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_PROFILE", "")
	tg := target(t, secretA)
	tg.Bucket.AccessKeyID, tg.Bucket.SecretAccessKey = "", ""

	t.Setenv("AWS_ACCESS_KEY_ID", s3srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3srv.SecretKey)
	rs := Startup(context.Background(), tg)
	if r := byCheck(rs)[CheckCredentials]; r.Status != OK || !strings.Contains(r.Detail, "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") {
		t.Errorf("env credentials: %v", r)
	}
	if r := byCheck(rs)[CheckBucket]; r.Status != OK {
		t.Errorf("bucket with env credentials: %v", r)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	rs = Startup(context.Background(), tg)
	r := byCheck(rs)[CheckCredentials]
	for _, want := range []string{"access_key_id", "secret_access_key", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if r.Status != Fail || !strings.Contains(r.Fix, want) {
			t.Errorf("no credentials: %v; want the fix to name %s", r, want)
		}
	}
	if b := byCheck(rs)[CheckBucket]; b.Status != Skip {
		t.Errorf("bucket after failed credentials: %v", b)
	}
}

func TestNewSecret(t *testing.T) {
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	key, err := webhook.ParseSecret(s)
	if err != nil || len(key) != 32 {
		t.Fatalf("%q: %v (%d bytes)", s, err, len(key))
	}
	if _, err := standardwebhooks.NewWebhook(s); err != nil {
		t.Fatal(err)
	}
	if s2, _ := NewSecret(); s2 == s {
		t.Fatal("two secrets are equal")
	}
}

func TestOriginMatches(t *testing.T) {
	for _, tc := range []struct {
		allowed []string
		origin  string
		want    bool
	}{
		{[]string{"*"}, "https://a.example", true},
		{[]string{"https://a.example"}, "https://a.example", true},
		{[]string{"https://*.example"}, "https://a.example", true},
		{[]string{"https://*.example"}, "http://a.example", false},
		{[]string{"https://b.example"}, "https://a.example", false},
	} {
		if got := originMatches(tc.allowed, tc.origin); got != tc.want {
			t.Errorf("originMatches(%v, %s) = %v", tc.allowed, tc.origin, got)
		}
	}
}

var s3ListInput = s3.ListObjectsV2Input{Bucket: aws.String("uploads")}
