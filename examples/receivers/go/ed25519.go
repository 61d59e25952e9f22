package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// tolerance is how far a webhook-timestamp may be from now.
const tolerance = 5 * time.Minute

// parsePublicKeys reads WEBHOOK_PUBLIC_KEY: one or more "whpk_" + base64
// of a raw 32-byte Ed25519 public key, space-separated (several while the
// sender rotates its signing key).
func parsePublicKeys(s string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, f := range strings.Fields(s) {
		raw, ok := strings.CutPrefix(f, "whpk_")
		if !ok {
			return nil, errors.New("each key must start with whpk_")
		}
		b, err := base64.StdEncoding.DecodeString(raw)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, errors.New("each key must be whpk_ followed by base64 of 32 bytes")
		}
		keys = append(keys, ed25519.PublicKey(b))
	}
	return keys, nil
}

// verifyV1a checks the timestamp and looks for a v1a (Ed25519) signature
// of "{id}.{timestamp}.{body}" by one of the keys in webhook-signature.
func verifyV1a(keys []ed25519.PublicKey, body []byte, h http.Header) error {
	id, tsText := h.Get("webhook-id"), h.Get("webhook-timestamp")
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return errors.New("invalid webhook-timestamp")
	}
	if d := time.Since(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook-timestamp is %s off", d.Round(time.Second))
	}
	msg := []byte(id + "." + tsText + "." + string(body))
	for _, f := range strings.Fields(h.Get("webhook-signature")) {
		b64, ok := strings.CutPrefix(f, "v1a,")
		if !ok {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) != ed25519.SignatureSize {
			continue
		}
		for _, k := range keys {
			if ed25519.Verify(k, msg, sig) {
				return nil
			}
		}
	}
	return errors.New("no matching v1a signature")
}
