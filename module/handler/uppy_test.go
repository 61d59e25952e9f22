package handler

import (
	"errors"
	"net/url"
	"testing"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

// TestUppyMetadataChecksum: the metadata field checksum_sha256 of Uppy's
// requests becomes the request's checksum (checked and bound by the
// service), not metadata; a non-string one is invalid_request.
func TestUppyMetadataChecksum(t *testing.T) {
	const sum = "OX4V60xDszksg4a9fnx4p1XJIOetuARKP+ND8XUaHBY="
	q := url.Values{"filename": {"a.png"}, "metadata[source]": {"demo"}, "metadata[checksum_sha256]": {sum}}
	meta, got, err := uppyMetadata(uppyQueryMetadata(q))
	if err != nil || got != sum || string(meta) != `{"source":"demo"}` {
		t.Errorf("params: metadata %s, checksum %q, %v; want {\"source\":\"demo\"}, %q", meta, got, err, sum)
	}
	meta, got, err = uppyMetadata(map[string]any{"checksum_sha256": sum})
	if err != nil || got != sum || meta != nil {
		t.Errorf("only a checksum: metadata %s, checksum %q, %v; want none, %q", meta, got, err, sum)
	}
	meta, got, err = uppyMetadata(map[string]any{"album": "x"})
	if err != nil || got != "" || string(meta) != `{"album":"x"}` {
		t.Errorf("no checksum: metadata %s, checksum %q, %v", meta, got, err)
	}
	var ue *upload.Error
	if _, _, err = uppyMetadata(map[string]any{"checksum_sha256": 42.0}); !errors.As(err, &ue) || ue.Code != "invalid_request" {
		t.Errorf("a number as checksum: %v, want invalid_request", err)
	}
}
