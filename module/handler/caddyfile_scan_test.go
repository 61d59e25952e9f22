package handler

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/scan"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

func TestUnmarshalCaddyfileScan(t *testing.T) {
	d := caddyfile.NewTestDispenser(`direct_upload {
		bucket b
		scan clamd unix:///run/clamav/clamd.ctl
		scan_timeout 45s
		scan_fail open
		scan_hit delete
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	h.Promote, h.StagingPrefix, h.Key = "on", DefaultStagingPrefix, DefaultKey
	cfg, err := h.scanConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, ok := cfg.Scanner.(*scan.Client)
	if !ok || c.Network != "unix" || c.Address != "/run/clamav/clamd.ctl" || cfg.Timeout != 45*time.Second || !cfg.FailOpen || cfg.Hit != upload.ScanHitDelete {
		t.Fatalf("scan config %+v (client %+v)", cfg, c)
	}

	// Defaults: fail-closed, quarantine under quarantine/.
	h = Handler{ScanSettings: ScanSettings{ScanClamd: "tcp://127.0.0.1:3310"}, Promote: "on", StagingPrefix: DefaultStagingPrefix, Key: DefaultKey}
	cfg, err = h.scanConfig()
	if err != nil || cfg.FailOpen || cfg.Hit != upload.ScanHitQuarantine || cfg.QuarantinePrefix != "quarantine/" || cfg.Timeout != 0 {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	// Off unless scan is set.
	h = Handler{}
	if cfg, err := h.scanConfig(); cfg != nil || err != nil {
		t.Fatalf("no scan: %+v %v", cfg, err)
	}

	for _, src := range []string{
		"direct_upload {\n scan tcp://127.0.0.1:3310\n}",
		"direct_upload {\n scan clamd 127.0.0.1:3310\n}",
		"direct_upload {\n scan clamav tcp://127.0.0.1:3310\n}",
		"direct_upload {\n scan_timeout 0s\n}",
		"direct_upload {\n scan_fail maybe\n}",
		"direct_upload {\n scan_hit keep\n}",
		"direct_upload {\n quarantine_prefix a/ b/\n}",
		"direct_upload {\n scan_fai closed\n}",
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src)); err == nil {
			t.Errorf("%q: no error", src)
		}
	}
	for _, tc := range []struct {
		s    ScanSettings
		want string
	}{
		{ScanSettings{ScanFail: "open"}, "need scan clamd"},
		{ScanSettings{ScanClamd: "tcp://h:1", QuarantinePrefix: "staging/q/"}, "overlaps staging_prefix"},
		{ScanSettings{ScanClamd: "tcp://h:1", QuarantinePrefix: "q"}, "end it with /"},
		{ScanSettings{ScanClamd: "tcp://h:1", QuarantinePrefix: "/q/"}, "leading /"},
		{ScanSettings{ScanClamd: "tcp://h:1", QuarantinePrefix: "uploads/"}, "renders under quarantine_prefix"},
		{ScanSettings{ScanClamd: "tcp://h:1"}, "needs promote on"},
	} {
		h := Handler{ScanSettings: tc.s, Promote: "on", StagingPrefix: DefaultStagingPrefix, Key: "uploads/{id}{ext}"}
		if tc.want == "needs promote on" {
			h.Promote = "off"
		}
		if _, err := h.scanConfig(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want an error with %q", tc.s, err, tc.want)
		}
	}
}
