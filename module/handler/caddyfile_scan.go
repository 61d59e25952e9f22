package handler

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/scan"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

// ScanSettings turn on the opt-in malware scan (docs/scan.md): every
// verified object is streamed to clamd before the upload completes.
type ScanSettings struct {
	// ScanClamd is clamd's address: tcp://host:port or
	// unix:///path/to/socket. Empty: no scan.
	ScanClamd string `json:"scan_clamd,omitempty"`
	// ScanTimeout bounds one scan (GET, stream, answer). Default: 2m.
	ScanTimeout caddy.Duration `json:"scan_timeout,omitempty"`
	// ScanFail is "closed" (default: uploads wait while clamd is
	// unreachable) or "open" (they complete unscanned, scan "skipped").
	ScanFail string `json:"scan_fail,omitempty"`
	// ScanHit is "quarantine" (default: moved to QuarantinePrefix + key)
	// or "delete".
	ScanHit string `json:"scan_hit,omitempty"`
	// QuarantinePrefix is where infected objects go. Default:
	// "quarantine/".
	QuarantinePrefix string `json:"quarantine_prefix,omitempty"`
}

// unmarshalScan reads the scan subdirectives; ok says whether name was one.
func (h *Handler) unmarshalScan(d *caddyfile.Dispenser, name string, args []string) (bool, error) {
	one := func() (string, error) {
		if len(args) != 1 {
			return "", d.Errf("%s takes one value, got %d: %q", name, len(args), strings.Join(args, " "))
		}
		return args[0], nil
	}
	switch name {
	case "scan":
		if len(args) != 2 || args[0] != "clamd" {
			return true, d.Errf("scan takes: scan clamd tcp://127.0.0.1:3310 (or unix:///run/clamav/clamd.ctl)")
		}
		if _, err := scan.Parse(args[1]); err != nil {
			return true, d.Errf("scan: %v", err)
		}
		h.ScanClamd = args[1]
	case "scan_timeout":
		v, err := one()
		if err != nil {
			return true, err
		}
		dur, err := caddy.ParseDuration(v)
		if err != nil || dur <= 0 {
			return true, d.Errf("scan_timeout %q: want a positive duration such as 2m", v)
		}
		h.ScanTimeout = caddy.Duration(dur)
	case "scan_fail":
		v, err := one()
		if err != nil {
			return true, err
		}
		if v != "open" && v != "closed" {
			return true, d.Errf("scan_fail %q: want closed (uploads wait for the scanner) or open (they complete unscanned)", v)
		}
		h.ScanFail = v
	case "scan_hit":
		v, err := one()
		if err != nil {
			return true, err
		}
		if v != upload.ScanHitQuarantine && v != upload.ScanHitDelete {
			return true, d.Errf("scan_hit %q: want quarantine or delete", v)
		}
		h.ScanHit = v
	case "quarantine_prefix":
		v, err := one()
		if err != nil {
			return true, err
		}
		h.QuarantinePrefix = v
	default:
		return false, nil
	}
	return true, nil
}

// scanConfig checks the settings and returns the profile's scan, or nil
// when scanning is off.
func (h *Handler) scanConfig() (*upload.ScanConfig, error) {
	s := h.ScanSettings
	if s.ScanClamd == "" {
		if s.ScanTimeout != 0 || s.ScanFail != "" || s.ScanHit != "" || s.QuarantinePrefix != "" {
			return nil, errors.New("direct_upload: scan_timeout, scan_fail, scan_hit and quarantine_prefix need scan clamd <address>")
		}
		return nil, nil
	}
	c, err := scan.Parse(s.ScanClamd)
	if err != nil {
		return nil, fmt.Errorf("direct_upload: scan: %w", err)
	}
	cfg := &upload.ScanConfig{Scanner: c, Timeout: time.Duration(s.ScanTimeout), Hit: s.ScanHit, QuarantinePrefix: s.QuarantinePrefix}
	switch s.ScanFail {
	case "", "closed":
	case "open":
		cfg.FailOpen = true
	default:
		return nil, fmt.Errorf("direct_upload: scan_fail %q: want closed or open", s.ScanFail)
	}
	switch s.ScanHit {
	case "":
		cfg.Hit = upload.ScanHitQuarantine
	case upload.ScanHitQuarantine, upload.ScanHitDelete:
	default:
		return nil, fmt.Errorf("direct_upload: scan_hit %q: want quarantine or delete", s.ScanHit)
	}
	if cfg.QuarantinePrefix == "" {
		cfg.QuarantinePrefix = upload.DefaultQuarantinePrefix
	}
	q := cfg.QuarantinePrefix
	switch {
	case h.Promote != "on":
		// Without promotion the grant names the final key, and a replay
		// before it expires would put unscanned bytes there after the scan.
		return nil, errors.New("direct_upload: scan needs promote on: without promotion a client could replace the scanned object at its final key")
	case cfg.Hit == upload.ScanHitQuarantine && !strings.HasSuffix(q, "/"):
		return nil, fmt.Errorf("direct_upload: quarantine_prefix %q: end it with / (a folder of its own)", q)
	case strings.HasPrefix(q, "/"):
		return nil, fmt.Errorf("direct_upload: quarantine_prefix %q: write it without a leading /", q)
	case h.Promote == "on" && (strings.HasPrefix(q, h.StagingPrefix) || strings.HasPrefix(h.StagingPrefix, q)):
		return nil, fmt.Errorf("direct_upload: quarantine_prefix %q overlaps staging_prefix %q: the sweeper deletes what is under staging", q, h.StagingPrefix)
	case strings.HasPrefix(h.Key, q):
		return nil, fmt.Errorf("direct_upload: the key template %q renders under quarantine_prefix %q: uploads could land in quarantine", h.Key, q)
	}
	return cfg, nil
}
