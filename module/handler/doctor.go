package handler

import (
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/doctor"
)

// Target is what the doctor checks of this handler's profile, with its
// defaults applied and placeholders ({env.*}) expanded as Provision does.
// It makes no network call; the handler need not be provisioned.
func (h *Handler) Target(repl *caddy.Replacer) (doctor.Target, error) {
	if repl == nil {
		repl = caddy.NewReplacer()
	}
	t := doctor.Target{Profile: h.Profile, Bucket: bucket.Config{
		Bucket:          repl.ReplaceAll(h.Bucket, ""),
		Region:          repl.ReplaceAll(h.Region, ""),
		Endpoint:        repl.ReplaceAll(h.Endpoint, ""),
		PathStyle:       h.PathStyle,
		AccessKeyID:     repl.ReplaceAll(h.AccessKeyID, ""),
		SecretAccessKey: repl.ReplaceAll(h.SecretAccessKey, ""),
	}}
	if t.Profile == "" {
		t.Profile = DefaultProfile
	}
	if t.Bucket.Region == "" {
		t.Bucket.Region = DefaultRegion
	}
	switch {
	case strings.Contains(h.AccessKeyID, "{"):
		t.KeySource = "access_key_id " + h.AccessKeyID // the placeholder, not its value
	case h.AccessKeyID != "":
		t.KeySource = "access_key_id written in the config"
	}
	if h.Webhook != nil {
		ep, err := h.Webhook.endpoint(repl)
		if err != nil {
			return t, fmt.Errorf("profile %q: %w", t.Profile, err)
		}
		t.Webhook = ep
	}
	return t, nil
}
