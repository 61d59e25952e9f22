package handler

import (
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/doctor"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("direct_upload", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("direct_upload", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	direct_upload [<matcher>] {
//		profile             <name>
//		base_path           <path>
//		bucket              <name>
//		region              <region>
//		endpoint            <url>
//		path_style
//		access_key_id       <id>
//		secret_access_key   <secret>
//		key                 <template>
//		allowed_types       <type...>
//		max_size            <size>
//		expires             <duration>
//		identity            <placeholder>
//		max_metadata        <size>
//		content_disposition <value>
//		on_expiry           finalize|delete
//		s3_timeout          <duration>
//		max_pending         <n>
//		max_reserved        <size>
//		max_verified        <size> per <duration>
//		rate                <n>/<duration>
//		max_width           <pixels>
//		max_height          <pixels>
//		max_pixels          <pixels>|off
//		promote             on|off
//		staging_prefix      <prefix/>
//		method              post|put
//		require_checksum
//		scan                clamd tcp://<host:port>|unix://<path>
//		scan_timeout        <duration>
//		scan_fail           closed|open
//		scan_hit            quarantine|delete
//		quarantine_prefix   <prefix/>
//		webhook <url> {
//			secret  <whsec_...>
//			timeout <duration>
//			retry   <duration...>
//			wait    <duration>
//		}
//	}
//
// Sizes take units (10MiB, 500KB); durations take Caddy's units (5m, 1h).
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("direct_upload takes no argument on its line (got %q): put the settings in its { } block", d.Val())
	}
	for d.NextBlock(0) {
		name := d.Val()
		if !slices.Contains(subdirectives, name) {
			return unknownErr(d, "direct_upload subdirective", name, subdirectives)
		}
		if name == "webhook" {
			w, err := unmarshalWebhook(d)
			if err != nil {
				return err
			}
			h.Webhook = w
			continue
		}
		args := d.RemainingArgs()
		if ok, err := h.unmarshalQuota(d, name, args); ok {
			if err != nil {
				return err
			}
			continue
		}
		if ok, err := h.unmarshalScan(d, name, args); ok {
			if err != nil {
				return err
			}
			continue
		}
		switch {
		case name == "path_style":
			if len(args) > 0 {
				return d.Errf("path_style takes no value (got %q): write path_style alone to turn it on", strings.Join(args, " "))
			}
			h.PathStyle = true
			continue
		case name == "require_checksum":
			if len(args) > 0 {
				return d.Errf("require_checksum takes no value (got %q): write require_checksum alone to turn it on", strings.Join(args, " "))
			}
			h.RequireChecksum = true
			continue
		case len(args) == 0:
			return d.Errf("%s needs a value (a {$VARIABLE} that is unset expands to nothing)", name)
		case (name == "max_size" || name == "max_metadata") && len(args) > 1:
			return d.Errf("%s takes one size written without spaces: write %s, not %q", name, strings.Join(args, ""), strings.Join(args, " "))
		case name != "allowed_types" && len(args) > 1:
			return d.Errf("%s takes one value, got %d: %q", name, len(args), strings.Join(args, " "))
		}
		val := args[0]
		switch name {
		case "profile":
			h.Profile = val
		case "base_path":
			h.BasePath = val
		case "bucket":
			h.Bucket = val
		case "region":
			h.Region = val
		case "endpoint":
			h.Endpoint = val
		case "access_key_id":
			h.AccessKeyID = val
		case "secret_access_key":
			h.SecretAccessKey = val
		case "key":
			h.Key = val
		case "allowed_types":
			h.AllowedTypes = append(h.AllowedTypes, args...)
		case "max_size":
			n, err := parseSize(d, name, val)
			if err != nil {
				return err
			}
			h.MaxSize = int64(n)
		case "max_metadata":
			n, err := parseSize(d, name, val)
			if err != nil {
				return err
			}
			if n > 16<<10 {
				return d.Errf("max_metadata %q: at most 16KiB", val)
			}
			h.MaxMetadata = int(n)
		case "expires":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("expires %q: want a duration such as 5m or 90s", val)
			}
			h.Expires = caddy.Duration(dur)
		case "s3_timeout":
			dur, err := caddy.ParseDuration(val)
			if err != nil || dur <= 0 {
				return d.Errf("s3_timeout %q: want a positive duration such as 30s", val)
			}
			h.S3Timeout = caddy.Duration(dur)
		case "identity":
			h.Identity = val
		case "content_disposition":
			h.ContentDisposition = val
		case "on_expiry":
			h.OnExpiry = val
		case "max_width", "max_height", "max_pixels":
			if err := h.unmarshalImageLimit(name, val); err != nil {
				return d.Errf("%v", err)
			}
		case "promote":
			if val != "on" && val != "off" {
				return d.Errf("promote %q: want on or off", val)
			}
			h.Promote = val
		case "staging_prefix":
			h.StagingPrefix = val
		case "method":
			if val != "post" && val != "put" {
				return d.Errf("method %q: want post or put", val)
			}
			h.Method = val
		}
	}
	return nil
}

// subdirectives are the direct_upload block's settings.
var subdirectives = []string{
	"profile", "base_path", "bucket", "region", "endpoint", "path_style", "access_key_id", "secret_access_key",
	"key", "allowed_types", "max_size", "expires", "identity", "max_metadata", "content_disposition", "on_expiry", "webhook", "s3_timeout", "max_width", "max_height", "max_pixels",
	"promote", "staging_prefix", "method", "require_checksum",
	"max_pending", "max_reserved", "max_verified", "rate",
	"scan", "scan_timeout", "scan_fail", "scan_hit", "quarantine_prefix",
}

// parseSize reads a positive size with a unit (10MiB, 500KB, 2048).
func parseSize(d *caddyfile.Dispenser, name, val string) (uint64, error) {
	n, err := humanize.ParseBytes(val)
	if err != nil || n == 0 {
		return 0, d.Errf("%s %q: want a positive size such as 10MiB, 500KB or 1GiB", name, val)
	}
	return n, nil
}

// unknownErr names an unknown setting, the closest known one, and the list.
func unknownErr(d *caddyfile.Dispenser, what, name string, known []string) error {
	msg := fmt.Sprintf("unknown %s %q", what, name)
	if s := doctor.Closest(name, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return d.Errf("%s; known: %s", msg, strings.Join(known, ", "))
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
