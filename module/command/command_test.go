package command

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/standard"
)

// TestTargets: profiles are found at any depth of routes, with their
// defaults, placeholders expanded, and an origin from the site address.
func TestTargets(t *testing.T) {
	t.Setenv("DOCTOR_TEST_KEY", "AKIDTEST")
	src := `
app.example.com {
	route /uploads* {
		direct_upload {
			profile images
			bucket uploads
			access_key_id {env.DOCTOR_TEST_KEY}
			secret_access_key s
		}
	}
}
:8080 {
	handle /files* {
		direct_upload {
			bucket files
			endpoint http://127.0.0.1:7070
			path_style
		}
	}
}`
	cfg, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := Targets(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tg := range ts {
		got[tg.Profile] = tg.Bucket.Bucket + " " + tg.Bucket.Region + " " + tg.Bucket.AccessKeyID + " " + tg.Origin + " " + tg.KeySource
	}
	want := map[string]string{
		"images":  "uploads us-east-1 AKIDTEST https://app.example.com access_key_id {env.DOCTOR_TEST_KEY}",
		"default": "files us-east-1  http://localhost:8080 ",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	ts, _ = Targets(cfg, "https://other.example")
	for _, tg := range ts {
		if tg.Origin != "https://other.example" || tg.OriginSource != "--origin" {
			t.Errorf("--origin not applied: %+v", tg)
		}
	}
}
