package main

import (
	"testing"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
)

// TestPNGOfPassesVerification: the bench's uploads are PNGs whose
// dimensions the sidecar can read (image profiles refuse unreadable ones).
func TestPNGOfPassesVerification(t *testing.T) {
	b := pngOf(4096)
	if got := sniff.Detect(b); got != "image/png" {
		t.Fatalf("sniffed as %q", got)
	}
	if w, h, err := sniff.Dimensions(b); err != nil || w != 64 || h != 64 {
		t.Fatalf("dimensions %d x %d, %v", w, h, err)
	}
}
