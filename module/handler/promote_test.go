package handler

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestCaddyfilePromotion(t *testing.T) {
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("direct_upload {\n promote off\n staging_prefix incoming/\n}")); err != nil {
		t.Fatal(err)
	}
	if h.Promote != "off" || h.StagingPrefix != "incoming/" {
		t.Fatalf("got promote %q, staging_prefix %q", h.Promote, h.StagingPrefix)
	}
	for _, src := range []string{"direct_upload {\n promote maybe\n}", "direct_upload {\n promote\n}", "direct_upload {\n staging_prefix a b\n}"} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src)); err == nil {
			t.Errorf("accepted: %q", src)
		}
	}
}

func TestValidatePromotion(t *testing.T) {
	for _, ok := range [][3]string{
		{"on", "staging/", DefaultKey}, {"off", "staging/", "staging/{id}"}, {"on", "a/b-c_d.e/", "{id}"},
	} {
		if err := validatePromotion(ok[0], ok[1], ok[2]); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range [][3]string{
		{"yes", "staging/", DefaultKey}, {"on", "staging", DefaultKey}, {"on", "/staging/", DefaultKey},
		{"on", "a//", DefaultKey}, {"on", "../", DefaultKey}, {"on", "st ag/", DefaultKey},
		{"on", "staging/", "staging/{id}"}, {"on", "up/", "up/x/{id}"},
	} {
		if err := validatePromotion(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCaddyfileMethod(t *testing.T) {
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("direct_upload {\n method put\n}")); err != nil || h.Method != "put" {
		t.Fatalf("method put: %q %v", h.Method, err)
	}
	for _, src := range []string{"direct_upload {\n method get\n}", "direct_upload {\n method\n}", "direct_upload {\n method PUT\n}"} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src)); err == nil {
			t.Errorf("accepted: %q", src)
		}
	}
}
