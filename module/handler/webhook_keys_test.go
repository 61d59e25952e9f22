package handler

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

func TestWebhookEd25519SigningKeys(t *testing.T) {
	whsk, whpk, err := webhook.NewEd25519KeyPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("WH_SIGNING_KEY", whsk)
	d := caddyfile.NewTestDispenser(`direct_upload {
		webhook http://127.0.0.1:9/hook {
			secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
			signing_key {env.WH_SIGNING_KEY}
		}
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	ep, err := h.Webhook.endpoint(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if len(ep.Secrets) != 1 || len(ep.Ed25519Keys) != 1 || webhook.PublicKeyOf(ep.Ed25519Keys[0]) != whpk {
		t.Fatalf("endpoint keys: %d HMAC, %d Ed25519", len(ep.Secrets), len(ep.Ed25519Keys))
	}
	bad := &WebhookConfig{URL: "http://127.0.0.1:9/hook", Secrets: []string{"whsk_AAAA"}}
	if _, err := bad.endpoint(caddy.NewReplacer()); err == nil {
		t.Error("a short whsk_ key was accepted")
	}
}
