package handler

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

// DefaultWebhookWait is how long `complete` waits for the backend's answer
// to the first delivery attempt.
const DefaultWebhookWait = 3 * time.Second

// WebhookConfig says where a profile's events go and how they are signed
// and retried.
type WebhookConfig struct {
	// URL receives a signed POST per event. Required.
	URL string `json:"url"`
	// Secrets sign every delivery, each giving one signature (several allow
	// rotation). Each is either an HMAC secret, "whsec_" + base64 of 24-64
	// random bytes (v1 signatures), or an Ed25519 signing key, "whsk_" +
	// base64 of the 64-byte private key or its 32-byte seed (v1a
	// signatures; receivers verify with the "whpk_" public key). Use
	// {env.NAME} so secrets stay out of the JSON config. At least one.
	Secrets []string `json:"secrets"`
	// Timeout bounds each attempt. Default: 15s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Retry is the delay before each attempt, the first usually 0; after
	// the last one fails the event is dead-lettered.
	// Default: 0 5s 5m 30m 2h 5h 10h 14h 20h 24h (Standard Webhooks), ±10 % jitter.
	Retry []caddy.Duration `json:"retry,omitempty"`
	// Wait is how long `complete` waits for the first delivery, to return
	// the backend's JSON answer to the client as "backend". Default: 3s;
	// 0 turns the wait off.
	Wait *caddy.Duration `json:"wait,omitempty"`
}

// endpoint checks the config and builds the dispatcher's view of it.
func (w *WebhookConfig) endpoint(repl *caddy.Replacer) (*webhook.Endpoint, error) {
	raw := repl.ReplaceAll(w.URL, "")
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook url %q must be an absolute http(s) URL", w.URL)
	}
	if len(w.Secrets) == 0 {
		return nil, errors.New("webhook needs at least one secret: unsigned webhooks can be forged")
	}
	ep := &webhook.Endpoint{URL: raw, Timeout: time.Duration(w.Timeout)}
	for i, s := range w.Secrets {
		val := repl.ReplaceAll(s, "")
		if val == "" {
			return nil, fmt.Errorf("webhook secret #%d is empty: %s", i+1, emptySecretFix(s))
		}
		if err := addSigningKey(ep, val); err != nil {
			return nil, fmt.Errorf("webhook secret #%d: %w", i+1, err)
		}
	}
	if ep.Timeout == 0 {
		ep.Timeout = webhook.DefaultTimeout
	}
	if ep.Timeout < 0 || ep.Timeout > 5*time.Minute {
		return nil, errors.New("webhook timeout must be between 1ms and 5m")
	}
	for _, d := range w.Retry {
		if d < 0 {
			return nil, errors.New("webhook retry delays must not be negative")
		}
		ep.Schedule = append(ep.Schedule, time.Duration(d))
	}
	if len(ep.Schedule) == 0 {
		ep.Schedule = webhook.DefaultSchedule
	}
	return ep, nil
}

// webhookOptions are the webhook block's settings.
var webhookOptions = []string{"secret", "signing_key", "timeout", "retry", "wait"}

// emptySecretFix says what feeds an empty secret: an unset variable of
// a {env.NAME} placeholder (Caddyfile.example uses WEBHOOK_SECRET).
func emptySecretFix(raw string) string {
	if name, ok := strings.CutPrefix(raw, "{env."); ok && strings.HasSuffix(name, "}") {
		name = strings.TrimSuffix(name, "}")
		return fmt.Sprintf("%s expands to nothing: set %s to a whsec_ secret for Caddy's process (caddy direct-upload secret makes one)", raw, name)
	}
	return "set it to a whsec_ secret (caddy direct-upload secret makes one), e.g. secret {env.WEBHOOK_SECRET} with WEBHOOK_SECRET set"
}

func (w *WebhookConfig) wait() time.Duration {
	if w == nil {
		return 0
	}
	if w.Wait == nil {
		return DefaultWebhookWait
	}
	return time.Duration(*w.Wait)
}

// unmarshalWebhook parses:
//
//	webhook <url> {
//		secret  <whsec_...|whsk_...>  # repeatable; signing_key is the same
//		timeout <duration>
//		retry   <duration...>
//		wait    <duration>
//	}
func unmarshalWebhook(d *caddyfile.Dispenser) (*WebhookConfig, error) {
	w := new(WebhookConfig)
	if !d.NextArg() {
		return nil, d.Errf("webhook needs the receiver's URL: webhook https://backend/webhooks { secret ... }")
	}
	w.URL = d.Val()
	if d.NextArg() {
		return nil, d.Errf("webhook takes one URL, then a { } block (got %q after the URL)", d.Val())
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if !slices.Contains(webhookOptions, name) {
			return nil, unknownErr(d, "webhook option", name, webhookOptions)
		}
		args := d.RemainingArgs()
		if len(args) == 0 {
			if name == "secret" {
				return nil, d.Errf("webhook secret is empty: write secret {env.WEBHOOK_SECRET} and set WEBHOOK_SECRET " +
					"(caddy direct-upload secret makes one); a {$VARIABLE} that is unset expands to nothing")
			}
			return nil, d.Errf("webhook %s needs a value", name)
		}
		switch name {
		case "secret", "signing_key":
			w.Secrets = append(w.Secrets, args...)
		case "timeout", "wait":
			if len(args) != 1 {
				return nil, d.Errf("webhook %s takes one duration, got %q", name, strings.Join(args, " "))
			}
			dur, err := caddy.ParseDuration(args[0])
			if err != nil {
				return nil, d.Errf("%s %q: %v", name, args[0], err)
			}
			if name == "timeout" {
				w.Timeout = caddy.Duration(dur)
			} else {
				cd := caddy.Duration(dur)
				w.Wait = &cd
			}
		case "retry":
			w.Retry = nil
			for _, a := range args {
				dur, err := caddy.ParseDuration(a)
				if err != nil {
					return nil, d.Errf("retry %q: %v", a, err)
				}
				w.Retry = append(w.Retry, caddy.Duration(dur))
			}
		}
	}
	return w, nil
}
