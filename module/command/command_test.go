package command

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/standard"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
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

// TestSecretText: the default is a whsec_ secret; --ed25519 prints a
// signing key whose public key is the one printed beside it.
func TestSecretText(t *testing.T) {
	out, err := secretText(false)
	if err != nil || !strings.HasPrefix(out, "whsec_") || strings.Count(out, "\n") != 1 {
		t.Fatalf("secret: %q, %v", out, err)
	}
	out, err = secretText(true)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("key pair: %q", out)
	}
	sk := lines[0][strings.LastIndex(lines[0], " ")+1:]
	pk := lines[1][strings.LastIndex(lines[1], " ")+1:]
	key, err := webhook.ParseSigningKey(sk)
	if err != nil || !strings.HasPrefix(sk, "whsk_") || !strings.HasPrefix(pk, "whpk_") {
		t.Fatalf("key pair %q %q: %v", sk, pk, err)
	}
	if webhook.PublicKeyOf(key) != pk {
		t.Fatalf("the public key %s is not the signing key's", pk)
	}
}
