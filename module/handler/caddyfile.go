package handler

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
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
//		promote             on|off
//		staging_prefix      <prefix/>
//		method              post|put
//		require_checksum
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
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		name := d.Val()
		if name == "webhook" {
			w, err := unmarshalWebhook(d)
			if err != nil {
				return err
			}
			h.Webhook = w
			continue
		}
		if name == "path_style" {
			if d.NextArg() {
				return d.ArgErr()
			}
			h.PathStyle = true
			continue
		}
		if name == "require_checksum" {
			if d.NextArg() {
				return d.ArgErr()
			}
			h.RequireChecksum = true
			continue
		}
		args := d.RemainingArgs()
		if len(args) == 0 || name != "allowed_types" && len(args) > 1 {
			return d.ArgErr()
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
			n, err := humanize.ParseBytes(val)
			if err != nil || n == 0 {
				return d.Errf("max_size %q: want a size such as 10MiB", val)
			}
			h.MaxSize = int64(n)
		case "max_metadata":
			n, err := humanize.ParseBytes(val)
			if err != nil || n == 0 || n > 1<<20 {
				return d.Errf("max_metadata %q: want a size such as 4KiB", val)
			}
			h.MaxMetadata = int(n)
		case "expires":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("expires %q: %v", val, err)
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
		default:
			return d.Errf("unknown direct_upload subdirective %q", name)
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
