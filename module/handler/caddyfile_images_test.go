package handler

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfileImageLimits(t *testing.T) {
	d := caddyfile.NewTestDispenser(`direct_upload {
		bucket b
		max_width 8000
		max_height 6000
		max_pixels 40000000
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if h.MaxWidth != 8000 || h.MaxHeight != 6000 || h.MaxPixels != 40_000_000 {
		t.Fatalf("got %d %d %d", h.MaxWidth, h.MaxHeight, h.MaxPixels)
	}
	off := caddyfile.NewTestDispenser("direct_upload {\n max_pixels off\n}")
	if err := (&h).UnmarshalCaddyfile(off); err != nil || h.MaxPixels != -1 {
		t.Fatalf("max_pixels off: %d, %v", h.MaxPixels, err)
	}
	for _, src := range []string{
		"direct_upload {\n max_width 0\n}",
		"direct_upload {\n max_height -3\n}",
		"direct_upload {\n max_pixels many\n}",
		"direct_upload {\n max_width off\n}",
		"direct_upload {\n max_width 1 2\n}",
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src)); err == nil {
			t.Errorf("%q: no error", src)
		}
	}
}
