package webhook

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks forms of an asymmetric (v1a) key pair.
const (
	// SigningKeyPrefix starts a secret key: "whsk_" + base64 of the 64-byte
	// Ed25519 private key (seed then public key, as Go, libsodium and
	// NaCl store it). A bare 32-byte seed is accepted too.
	SigningKeyPrefix = "whsk_"
	// PublicKeyPrefix starts a public key: "whpk_" + base64 of the raw
	// 32-byte Ed25519 public key. Receivers need only this.
	PublicKeyPrefix = "whpk_"
)

// ParseSigningKey decodes a "whsk_" Ed25519 secret key.
func ParseSigningKey(s string) (ed25519.PrivateKey, error) {
	raw, ok := strings.CutPrefix(s, SigningKeyPrefix)
	if !ok {
		return nil, errors.New("webhook signing key must start with whsk_")
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, errors.New("webhook signing key is not valid base64 after whsk_")
	}
	switch len(b) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ed25519.PrivateKeySize:
		key := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
		if string(key[ed25519.SeedSize:]) != string(b[ed25519.SeedSize:]) {
			return nil, errors.New("webhook signing key: its public half does not belong to its seed")
		}
		return key, nil
	}
	return nil, fmt.Errorf("webhook signing key must decode to 32 or 64 bytes, not %d", len(b))
}

// ParsePublicKey decodes a "whpk_" Ed25519 public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	raw, ok := strings.CutPrefix(s, PublicKeyPrefix)
	if !ok {
		return nil, errors.New("webhook public key must start with whpk_")
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("webhook public key must be whpk_ + base64 of 32 bytes")
	}
	return ed25519.PublicKey(b), nil
}

// PublicKeyOf returns the "whpk_" form of a signing key's public key: what
// receivers configure to verify v1a signatures.
func PublicKeyOf(key ed25519.PrivateKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
}

// NewEd25519KeyPair makes a fresh key pair in its Standard Webhooks forms:
// the "whsk_" secret key for the sidecar's config and the "whpk_" public
// key for the receivers.
func NewEd25519KeyPair() (whsk, whpk string, err error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generating ed25519 key: %w", err)
	}
	return SigningKeyPrefix + base64.StdEncoding.EncodeToString(priv), PublicKeyOf(priv), nil
}

// SignEd25519 returns one "v1a,<base64 Ed25519 signature>" per key,
// space-separated, over "{id}.{timestamp}.{body}" as for v1.
func SignEd25519(keys []ed25519.PrivateKey, id string, ts time.Time, body []byte) string {
	if len(keys) == 0 {
		return ""
	}
	msg := make([]byte, 0, len(id)+len(body)+16)
	msg = append(append(append(msg, id...), '.'), strconv.FormatInt(ts.Unix(), 10)...)
	msg = append(append(msg, '.'), body...)
	sigs := make([]string, 0, len(keys))
	for _, k := range keys {
		sigs = append(sigs, "v1a,"+base64.StdEncoding.EncodeToString(ed25519.Sign(k, msg)))
	}
	return strings.Join(sigs, " ")
}

// VerifyEd25519 reports whether a webhook-signature header holds a v1a
// signature of the message by one of the public keys. It is the receivers'
// side, kept here for tests and Go receivers.
func VerifyEd25519(pubs []ed25519.PublicKey, header, id string, ts time.Time, body []byte) bool {
	msg := []byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "." + string(body))
	for _, f := range strings.Fields(header) {
		b64, ok := strings.CutPrefix(f, "v1a,")
		if !ok {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) != ed25519.SignatureSize {
			continue
		}
		for _, p := range pubs {
			if ed25519.Verify(p, msg, sig) {
				return true
			}
		}
	}
	return false
}

// Signature is the webhook-signature header of a delivery to the
// endpoint: a v1 signature per HMAC secret, then a v1a signature per
// Ed25519 key, space-separated, so receivers verify with whichever key
// they hold while keys rotate.
func (ep *Endpoint) Signature(id string, ts time.Time, body []byte) string {
	v1 := Sign(ep.Secrets, id, ts, body)
	v1a := SignEd25519(ep.Ed25519Keys, id, ts, body)
	switch {
	case v1 == "":
		return v1a
	case v1a == "":
		return v1
	}
	return v1 + " " + v1a
}
