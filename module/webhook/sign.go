// Package webhook delivers outbox events to the backend as Standard
// Webhooks: signed, retried on a schedule until delivered, dead-lettered
// when the endpoint is gone or retries run out.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
func Sign(secrets []Secret, id string, ts time.Time, body []byte) string {
	prefix := id + "." + strconv.FormatInt(ts.Unix(), 10) + "."
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		m := hmac.New(sha256.New, s)
		m.Write([]byte(prefix))
		m.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return strings.Join(sigs, " ")
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
