// Package webhook delivers outbox events to the backend as Standard
// Webhooks: signed, retried on a schedule until delivered, dead-lettered
// when the endpoint is gone or retries run out.
package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// The Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

const secretPrefix = "whsec_"

// Secret is a signing key, decoded from its whsec_ form.
type Secret []byte

// ParseSecret decodes a "whsec_" + base64 secret of 24 to 64 bytes.
func ParseSecret(s string) (Secret, error) {
	raw, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return nil, errors.New("webhook secret must start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, errors.New("webhook secret is not valid base64 after whsec_")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("webhook secret must decode to 24-64 bytes, not %d", len(key))
	}
	return key, nil
}

// Sign returns the webhook-signature header value for a message: one
// "v1,<base64 HMAC-SHA256>" per secret, space-separated, over
// "{id}.{timestamp}.{body}". Several secrets let receivers rotate keys.
// It is written into one buffer (every attempt signs its body).
func Sign(secrets []Secret, id string, ts time.Time, body []byte) string {
	if len(secrets) == 0 {
		return ""
	}
	// The header, then the signed prefix "{id}.{timestamp}." at its end,
	// in one allocation.
	const sigLen = len("v1,") + 44 // base64 of 32 bytes
	hdr := len(secrets)*(sigLen+1) - 1
	buf := make([]byte, 0, hdr+len(id)+22)
	prefix := strconv.AppendInt(append(append(buf[hdr:hdr], id...), '.'), ts.Unix(), 10)
	prefix = append(prefix, '.')
	out := buf[:0]
	var sum [sha256.Size]byte
	for i, s := range secrets {
		m, pool := mac(s)
		m.Write(prefix)
		m.Write(body)
		if i > 0 {
			out = append(out, ' ')
		}
		out = base64.StdEncoding.AppendEncode(append(out, "v1,"...), m.Sum(sum[:0]))
		pool.Put(m)
	}
	return string(out)
}

// macs holds, by secret, a pool of HMAC-SHA256 states keyed with it:
// an attempt resets one instead of building one (five allocations). The
// configured secrets are few, so the map stays small.
var macs struct {
	sync.RWMutex
	pools map[string]*sync.Pool
}

// mac returns a reset HMAC keyed with s, and the pool to put it back in.
func mac(s Secret) (hash.Hash, *sync.Pool) {
	macs.RLock()
	pool := macs.pools[string(s)]
	macs.RUnlock()
	if pool == nil {
		key := bytes.Clone(s)
		macs.Lock()
		if macs.pools == nil {
			macs.pools = make(map[string]*sync.Pool)
		}
		if pool = macs.pools[string(key)]; pool == nil {
			pool = &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}
			macs.pools[string(key)] = pool
		}
		macs.Unlock()
	}
	m := pool.Get().(hash.Hash)
	m.Reset()
	return m, pool
}

// Data is the "data" object of every upload event.
type Data struct {
	ID          string          `json:"id"`
	Profile     string          `json:"profile"`
	Status      store.Status    `json:"status"`
	Bucket      string          `json:"bucket"`
	Key         string          `json:"key"`
	Size        int64           `json:"size,omitempty"`
	ContentType string          `json:"content_type"`
	ETag        string          `json:"etag,omitempty"`
	Width       int             `json:"width,omitempty"`
	Height      int             `json:"height,omitempty"`
	Filename    string          `json:"filename,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	Identity    string          `json:"identity,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	Detail      string          `json:"detail,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	ExpiresAt   time.Time       `json:"expires_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	// ChecksumSHA256 is the declared SHA-256 (base64) the store confirmed.
	ChecksumSHA256 string `json:"checksum_sha256,omitempty"`
	// Scan, Threat and QuarantineKey: the malware scan's result (docs/scan.md).
	Scan          string `json:"scan,omitempty"`
	Threat        string `json:"threat,omitempty"`
	QuarantineKey string `json:"quarantine_key,omitempty"`
}

// Payload is the JSON body of a webhook.
type Payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Body renders an event's webhook body. It depends on the event alone, so
// every retry sends the same bytes.
func Body(ev *store.Event) ([]byte, error) {
	in := ev.Intent
	size := in.Size
	if in.ObjectSize > 0 {
		size = in.ObjectSize
	}
	return json.Marshal(Payload{
		Type:      ev.Type,
		Timestamp: ev.CreatedAt.UTC(),
		Data: Data{
			ID: in.ID, Profile: in.Profile, Status: in.Status, Bucket: in.Bucket, Key: in.Key,
			Size: size, ContentType: in.ContentType, ETag: in.ETag, Width: in.Width, Height: in.Height, Filename: in.Filename,
			Metadata: in.Metadata, Identity: in.Identity, Reason: in.Reason, Detail: in.Detail,
			CreatedAt: in.CreatedAt.UTC(), ExpiresAt: in.ExpiresAt.UTC(), UpdatedAt: in.UpdatedAt.UTC(),
			ChecksumSHA256: in.ChecksumSHA256,
			Scan:           in.Scan, Threat: in.Threat, QuarantineKey: in.QuarantineKey,
		},
	})
}
