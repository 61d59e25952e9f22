package handler

import (
	"encoding/json"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// grantView is the 201 answer to a new upload: where to post the form and
// with which fields.
type grantView struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Fields    map[string]string `json:"fields,omitempty"`
	Key       string            `json:"key"`
	Bucket    string            `json:"bucket"`
	ExpiresAt time.Time         `json:"expires_at"`
	MaxSize   int64             `json:"max_size"`
	// Headers are what a PUT grant's request must carry (method put).
	Headers map[string]string `json:"headers,omitempty"`
	// StagingKey is the key the grant names (promotion on): the object
	// is copied to Key once verified.
	StagingKey string `json:"staging_key,omitempty"`
}

// intentView is an intent as clients see it.
type intentView struct {
	ID          string          `json:"id"`
	Status      store.Status    `json:"status"`
	Profile     string          `json:"profile"`
	Bucket      string          `json:"bucket"`
	Key         string          `json:"key"`
	Filename    string          `json:"filename,omitempty"`
	ContentType string          `json:"content_type"`
	Size        int64           `json:"size,omitempty"`
	MaxSize     int64           `json:"max_size"`
	ETag        string          `json:"etag,omitempty"`
	Width       int             `json:"width,omitempty"`
	Height      int             `json:"height,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	Detail      string          `json:"detail,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	ExpiresAt   time.Time       `json:"expires_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	// Backend is the backend's JSON answer to this outcome's webhook.
	Backend json.RawMessage `json:"backend,omitempty"`
	// ChecksumSHA256 is the declared SHA-256 (base64), compared with the
	// store's at complete.
	ChecksumSHA256 string `json:"checksum_sha256,omitempty"`
	// Scanning, Scan, Threat: the malware scan (docs/scan.md).
	Scanning bool   `json:"scanning,omitempty"`
	Scan     string `json:"scan,omitempty"`
	Threat   string `json:"threat,omitempty"`
}

// viewOf shows the verified size once the object was seen, the declared
// size before.
func viewOf(in *store.Intent) *intentView {
	size := in.Size
	if in.ObjectSize > 0 {
		size = in.ObjectSize
	}
	return &intentView{
		ID: in.ID, Status: in.Status, Profile: in.Profile, Bucket: in.Bucket, Key: in.Key,
		Filename: in.Filename, ContentType: in.ContentType, Size: size, MaxSize: in.MaxSize,
		ETag: in.ETag, Width: in.Width, Height: in.Height, Metadata: in.Metadata, Reason: in.Reason, Detail: in.Detail,
		CreatedAt: in.CreatedAt, ExpiresAt: in.ExpiresAt, UpdatedAt: in.UpdatedAt,
		ChecksumSHA256: in.ChecksumSHA256,
		Scanning:       in.Scanning, Scan: in.Scan, Threat: in.Threat,
	}
}

// multipartView is the 201 answer to a new multipart upload.
type multipartView struct {
	ID        string    `json:"id"`
	Key       string    `json:"key"`
	Bucket    string    `json:"bucket"`
	UploadID  string    `json:"upload_id"`
	PartSize  int64     `json:"part_size"`
	PartCount int       `json:"part_count"`
	ExpiresAt time.Time `json:"expires_at"`
	MaxSize   int64     `json:"max_size"`
	// StagingKey is the key the part URLs name (promotion on).
	StagingKey string `json:"staging_key,omitempty"`
}
