package handler

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

// QuotaConfig is a profile's per-identity quotas and grant rate limit
// (docs/quotas.md). On routes without identity they count per client IP.
// Zero values mean no limit.
type QuotaConfig struct {
	// MaxPending caps the grants of one identity pending at once.
	MaxPending int64 `json:"max_pending,omitempty"`
	// MaxReserved caps the bytes one identity's pending grants reserve
	// (each its declared size, or max_size when none was declared).
	MaxReserved int64 `json:"max_reserved,omitempty"`
	// MaxVerified caps the bytes one identity may upload per
	// MaxVerifiedPer (a rolling window), counting pending reservations.
	MaxVerified    int64          `json:"max_verified,omitempty"`
	MaxVerifiedPer caddy.Duration `json:"max_verified_per,omitempty"`
	// Rate limits grants per identity, as "<n>/<duration>" ("20/1m"):
	// a burst of n, then n per duration.
	Rate string `json:"rate,omitempty"`
}

// limits checks the configuration and returns the service's limits.
func (q QuotaConfig) limits() (upload.Limits, error) {
	l := upload.Limits{QuotaLimits: store.QuotaLimits{
		MaxPending: q.MaxPending, MaxReserved: q.MaxReserved,
		MaxVerified: q.MaxVerified, VerifiedWindow: time.Duration(q.MaxVerifiedPer),
	}}
	switch {
	case q.MaxPending < 0 || q.MaxReserved < 0 || q.MaxVerified < 0:
		return l, errors.New("direct_upload: max_pending, max_reserved and max_verified must not be negative")
	case q.MaxVerified > 0 && time.Duration(q.MaxVerifiedPer) < time.Minute:
		return l, errors.New("direct_upload: max_verified needs a window of at least 1m (max_verified <size> per <duration>)")
	}
	if q.Rate != "" {
		r, err := parseRate(q.Rate)
		if err != nil {
			return l, fmt.Errorf("direct_upload: %w", err)
		}
		l.Rate = r
	}
	return l, nil
}

// parseRate reads "<n>/<duration>", e.g. 20/1m.
func parseRate(s string) (upload.Rate, error) {
	ns, ds, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n < 1 || n > 1_000_000 {
		return upload.Rate{}, fmt.Errorf("rate %q: want <n>/<duration> such as 20/1m", s)
	}
	d, err := caddy.ParseDuration(ds)
	if err != nil || d < time.Second {
		return upload.Rate{}, fmt.Errorf("rate %q: want <n>/<duration> with a duration of at least 1s, such as 20/1m", s)
	}
	return upload.Rate{N: n, Per: d}, nil
}

// quotaSubdirectives are the Caddyfile settings of QuotaConfig.
var quotaSubdirectives = []string{"max_pending", "max_reserved", "max_verified", "rate"}

// unmarshalQuota reads one quota setting; false if name is none.
//
//	max_pending  <n>
//	max_reserved <size>
//	max_verified <size> per <duration>
//	rate         <n>/<duration>
func (h *Handler) unmarshalQuota(d *caddyfile.Dispenser, name string, args []string) (bool, error) {
	switch name {
	case "max_pending":
		if len(args) != 1 {
			return true, d.Errf("max_pending takes one number")
		}
		n, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || n < 1 {
			return true, d.Errf("max_pending %q: want a positive number of grants", args[0])
		}
		h.MaxPending = n
	case "max_reserved":
		if len(args) != 1 {
			return true, d.Errf("max_reserved takes one size written without spaces, such as 1GiB")
		}
		n, err := parseSize(d, name, args[0])
		if err != nil {
			return true, err
		}
		h.MaxReserved = int64(n)
	case "max_verified":
		if len(args) != 3 || args[1] != "per" {
			return true, d.Errf("max_verified takes <size> per <duration>, such as: max_verified 1GiB per 24h")
		}
		n, err := parseSize(d, name, args[0])
		if err != nil {
			return true, err
		}
		dur, err := caddy.ParseDuration(args[2])
		if err != nil || dur < time.Minute {
			return true, d.Errf("max_verified window %q: want a duration of at least 1m such as 1h or 24h", args[2])
		}
		h.MaxVerified, h.MaxVerifiedPer = int64(n), caddy.Duration(dur)
	case "rate":
		if len(args) != 1 {
			return true, d.Errf("rate takes one value such as 20/1m")
		}
		if _, err := parseRate(args[0]); err != nil {
			return true, d.Err(err.Error())
		}
		h.Rate = args[0]
	default:
		return false, nil
	}
	return true, nil
}

// setRetryAfter sets Retry-After, in whole seconds, for an error that
// says when trying again may succeed (a rate limit's next token).
func setRetryAfter(w http.ResponseWriter, ue *upload.Error) {
	if ue.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(store.RetrySeconds(ue.RetryAfter), 10))
	}
}

// clientIP is the request's client address as Caddy determined it
// (trusted proxies honoured), else the connection's peer.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
