// Package handler is the http.handlers.direct_upload Caddy module: the HTTP
// face of one upload profile. It grants uploads (presigned POST policies),
// and takes the client's report of success or failure, all as JSON.
package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/app"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// Defaults of the handler's settings.
const (
	DefaultProfile     = "default"
	DefaultBasePath    = "/uploads"
	DefaultRegion      = "us-east-1"
	DefaultKey         = "{profile}/{year}/{month}/{day}/{id}{ext}"
	DefaultMaxSize     = 10 << 20
	DefaultExpires     = 5 * time.Minute
	DefaultMaxMetadata = 4 << 10
	// MaxExpires is the longest a policy may live: SigV4 signatures last at
	// most 7 days, and a long-lived policy can overwrite its object for long.
	MaxExpires = 7 * 24 * time.Hour
)

// DefaultAllowedTypes are the image types allowed when none are configured.
// SVG and HTML are never allowed unless listed explicitly.
var DefaultAllowedTypes = []string{"image/jpeg", "image/png", "image/webp", "image/gif", "image/avif"}

// Handler grants direct uploads to an S3-compatible bucket for one upload
// profile. Requests under BasePath are answered here; others pass on.
//
//	POST {base}                 ask for an upload: 201 with the form to post
//	GET  {base}/{id}            the upload's status
//	POST {base}/{id}/complete   verify the object and finalize the upload
//	POST {base}/{id}/fail       report a failed upload; its object is deleted
type Handler struct {
	// Profile names this kind of upload; intents remember it, and webhooks
	// report it. Unique within a config. Default: "default".
	Profile string `json:"profile,omitempty"`
	// BasePath is the path the API is served under. Default: "/uploads".
	BasePath string `json:"base_path,omitempty"`

	// Bucket is the bucket uploads go to. Required.
	Bucket string `json:"bucket"`
	// Region is the bucket's region. Default: "us-east-1".
	Region string `json:"region,omitempty"`
	// Endpoint is the S3 endpoint URL, for S3-compatible servers.
	// Default: AWS S3 for the region.
	Endpoint string `json:"endpoint,omitempty"`
	// PathStyle addresses the bucket as {endpoint}/{bucket} instead of as a
	// subdomain. Default: false.
	PathStyle bool `json:"path_style,omitempty"`
	// AccessKeyID and SecretAccessKey are static credentials; placeholders
	// such as {env.AWS_SECRET_ACCESS_KEY} are expanded at provisioning, so
	// secrets need not appear in the config. Default: empty, meaning the
	// default AWS credential chain (environment, shared files, instance role).
	AccessKeyID     string `json:"access_key_id,omitempty"`
	SecretAccessKey string `json:"secret_access_key,omitempty"`

	// Key is the object key template. Placeholders: {id}, {ext} (the
	// extension of the allowed type), {profile}, {identity} (reduced to
	// [A-Za-z0-9_-]), {year}, {month}, {day}, {hour} (UTC). It must contain
	// {id}; the client's filename is never used.
	// Default: "{profile}/{year}/{month}/{day}/{id}{ext}".
	Key string `json:"key,omitempty"`
	// AllowedTypes are the exact content types clients may upload.
	// Default: image/jpeg, image/png, image/webp, image/gif, image/avif.
	AllowedTypes []string `json:"allowed_types,omitempty"`
	// MaxSize is the largest object in bytes. Default: 10 MiB.
	MaxSize int64 `json:"max_size,omitempty"`
	// Expires is how long a presigned policy stays usable. Default: 5m;
	// at most 7 days.
	Expires caddy.Duration `json:"expires,omitempty"`
	// Identity is a placeholder naming who asks, typically a header set by
	// forward_auth, e.g. {http.request.header.X-User-Id}. When set, requests
	// where it is empty get 401, and each upload is visible to its own
	// identity only. Default: empty (no identity; anyone who knows an id).
	Identity string `json:"identity,omitempty"`
	// MaxMetadata bounds the client's metadata, in bytes of compact JSON.
	// Default: 4 KiB.
	MaxMetadata int `json:"max_metadata,omitempty"`
	// ContentDisposition, when set, is pinned on every object (for example
	// "attachment"), so browsers download rather than display it.
	// Default: empty (not set).
	ContentDisposition string `json:"content_disposition,omitempty"`
	// S3Timeout bounds each call to the bucket made for this profile
	// (verifying, deleting, multipart calls): a call cut off decides nothing
	// and the client gets 503 storage_timeout with Retry-After. Default: 30s.
	S3Timeout caddy.Duration `json:"s3_timeout,omitempty"`
	// OnExpiry says what happens to an upload whose client never called
	// complete, once its policy expired: "finalize" verifies it exactly as
	// complete would (completed or rejected), "delete" deletes it (the
	// intent expires). Default: "finalize".
	OnExpiry string `json:"on_expiry,omitempty"`
	// MaxWidth and MaxHeight bound an image's width and height in pixels,
	// read from its header (PNG, JPEG, GIF, WebP, AVIF) without decoding
	// it; an image over a limit is rejected with reason image_too_large
	// and deleted. Default: none.
	MaxWidth  int `json:"max_width,omitempty"`
	MaxHeight int `json:"max_height,omitempty"`
	// MaxPixels bounds an image's width × height. Default: 50000000 (50
	// megapixels) when every allowed type is an image, else none; -1
	// turns the default off.
	MaxPixels int64 `json:"max_pixels,omitempty"`
	// Promote, "on" or "off": with promotion on, grants name a staging key
	// (StagingPrefix + the final key) and a verified object is copied
	// server-side to its final key, so no client can ever write a final
	// key (see docs/integrity.md). Default: "on".
	Promote string `json:"promote,omitempty"`
	// StagingPrefix is where uploads land before promotion; give the
	// bucket a lifecycle rule that expires objects under it. Default:
	// "staging/".
	StagingPrefix string `json:"staging_prefix,omitempty"`
	// Method is how clients upload: "post" (a presigned POST policy) or
	// "put" (a presigned PUT URL whose headers are signed, for stores
	// without POST policies: Cloudflare R2, Backblaze B2, Google Cloud
	// Storage). PUT needs the file's size in the request. Default: "post".
	Method string `json:"method,omitempty"`
	// RequireChecksum refuses grants whose request has no checksum_sha256
	// (400 checksum_required). Default: false (a checksum is optional).
	RequireChecksum bool `json:"require_checksum,omitempty"`
	// Webhook, when set, receives every outcome of this profile's uploads
	// as a signed Standard Webhooks POST. Default: none (events are kept in
	// the outbox, marked skipped).
	Webhook *WebhookConfig `json:"webhook,omitempty"`
	// QuotaConfig holds the per-identity quotas and grant rate limit
	// (max_pending, max_reserved, max_verified, rate; see ratelimit.go).
	QuotaConfig
	// ScanSettings turn on the malware scan (scan, scan_timeout,
	// scan_fail, scan_hit, quarantine_prefix; see caddyfile_scan.go).
	ScanSettings

	app     *app.App
	profile *upload.Profile
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.direct_upload",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision fills in defaults, builds the bucket client (no network call)
// and registers the profile with the direct_upload app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Profile == "" {
		h.Profile = DefaultProfile
	}
	if h.BasePath == "" {
		h.BasePath = DefaultBasePath
	}
	h.BasePath = "/" + strings.Trim(h.BasePath, "/")
	if h.Region == "" {
		h.Region = DefaultRegion
	}
	if h.Key == "" {
		h.Key = DefaultKey
	}
	if len(h.AllowedTypes) == 0 {
		h.AllowedTypes = DefaultAllowedTypes
	}
	if h.MaxSize == 0 {
		h.MaxSize = DefaultMaxSize
	}
	if h.Expires == 0 {
		h.Expires = caddy.Duration(DefaultExpires)
	}
	if h.MaxMetadata == 0 {
		h.MaxMetadata = DefaultMaxMetadata
	}
	if h.OnExpiry == "" {
		h.OnExpiry = upload.OnExpiryFinalize
	}
	if h.S3Timeout == 0 {
		h.S3Timeout = caddy.Duration(upload.DefaultS3Timeout)
	}
	if h.Promote == "" {
		h.Promote = "on"
	}
	if h.StagingPrefix == "" {
		h.StagingPrefix = DefaultStagingPrefix
	}
	if err := validatePromotion(h.Promote, h.StagingPrefix, h.Key); err != nil {
		return err
	}
	if h.Method == "" {
		h.Method = "post"
	}
	if h.Method != "post" && h.Method != "put" {
		return fmt.Errorf("direct_upload: method must be post or put, not %q", h.Method)
	}
	if err := h.validate(); err != nil {
		return err
	}
	limits, err := h.QuotaConfig.limits()
	if err != nil {
		return err
	}

	key, err := upload.ParseKeyTemplate(h.Key)
	if err != nil {
		return err
	}
	allowed := make(map[string]sniff.Type, len(h.AllowedTypes))
	for _, t := range h.AllowedTypes {
		mt, _, err := mime.ParseMediaType(t)
		if err != nil || mt != strings.ToLower(t) {
			return fmt.Errorf("allowed type %q: give a bare lowercase media type such as image/png", t)
		}
		st := sniff.TypeOf(mt)
		if st.Active {
			h.logger.Warn("profile allows active content: browsers can run it if it is ever served inline",
				zap.String("profile", h.Profile), zap.String("content_type", mt))
		}
		allowed[mt] = st
	}

	repl := caddy.NewReplacer()
	objs, err := bucket.New(ctx, bucket.Config{
		Bucket:          repl.ReplaceAll(h.Bucket, ""),
		Region:          repl.ReplaceAll(h.Region, ""),
		Endpoint:        repl.ReplaceAll(h.Endpoint, ""),
		PathStyle:       h.PathStyle,
		AccessKeyID:     repl.ReplaceAll(h.AccessKeyID, ""),
		SecretAccessKey: repl.ReplaceAll(h.SecretAccessKey, ""),
	})
	if err != nil {
		return fmt.Errorf("profile %q: %w", h.Profile, err)
	}
	h.profile = &upload.Profile{
		Name: h.Profile, Objects: objs, Key: key, Allowed: allowed,
		MaxSize: h.MaxSize, Expires: time.Duration(h.Expires), MaxMetadata: h.MaxMetadata,
		ContentDisposition: h.ContentDisposition, OnExpiry: h.OnExpiry, S3Timeout: time.Duration(h.S3Timeout),
		Limits: limits,
		Images: upload.ImageLimits{MaxWidth: h.MaxWidth, MaxHeight: h.MaxHeight, MaxPixels: h.MaxPixels},
	}
	if h.MaxPixels == 0 && upload.ImageProfile(allowed) {
		h.profile.Images.MaxPixels = upload.DefaultMaxPixels
	}
	if h.Promote == "on" {
		h.profile.StagingPrefix = h.StagingPrefix
	}
	if h.Method == "put" {
		h.profile.Method = upload.MethodPut
	}
	h.profile.RequireChecksum = h.RequireChecksum
	if h.profile.Scan, err = h.scanConfig(); err != nil {
		return err
	}

	var ep *webhook.Endpoint
	if h.Webhook != nil {
		if ep, err = h.Webhook.endpoint(repl); err != nil {
			return fmt.Errorf("profile %q: %w", h.Profile, err)
		}
	}

	appIface, err := ctx.App(app.ID)
	if err != nil {
		return fmt.Errorf("loading direct_upload app: %w", err)
	}
	h.app = appIface.(*app.App)
	if err := h.app.RegisterProfile(h.profile, ep); err != nil {
		return err
	}
	if t, err := h.Target(repl); err == nil {
		h.app.RegisterChecks(t) // run in the background once the app starts
	}
	return nil
}

func (h *Handler) validate() error {
	switch {
	case h.Bucket == "":
		return errors.New("direct_upload: bucket is required")
	case h.MaxSize < 1:
		return errors.New("direct_upload: max_size must be positive")
	case h.MaxSize > 5<<30:
		return errors.New("direct_upload: max_size over 5 GiB cannot be uploaded with one POST")
	case time.Duration(h.Expires) < time.Second || time.Duration(h.Expires) > MaxExpires:
		return errors.New("direct_upload: expires must be between 1s and 7 days")
	case h.MaxMetadata < 2 || h.MaxMetadata > 16<<10:
		return errors.New("direct_upload: max_metadata must be between 2 bytes and 16 KiB")
	case h.S3Timeout < 0:
		return errors.New("direct_upload: s3_timeout must not be negative")
	case h.OnExpiry != upload.OnExpiryFinalize && h.OnExpiry != upload.OnExpiryDelete:
		return errors.New("direct_upload: on_expiry must be finalize or delete")
	case h.MaxWidth < 0 || h.MaxHeight < 0 || h.MaxPixels < -1:
		return errors.New("direct_upload: max_width and max_height must be positive, max_pixels positive or -1")
	}
	for _, c := range h.Profile {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("direct_upload: profile %q may use only a-z, 0-9, '-' and '_'", h.Profile)
		}
	}
	return nil
}

// ServeHTTP answers the upload API under BasePath and passes anything else on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (err error) {
	// BasePath has no trailing slash but "/" has one; cut without it, so
	// that "/" keeps every path's leading slash.
	rel, ok := strings.CutPrefix(r.URL.Path, strings.TrimSuffix(h.BasePath, "/"))
	if !ok || rel != "" && rel[0] != '/' {
		return next.ServeHTTP(w, r)
	}
	defer func() {
		if p := recover(); p != nil {
			h.logger.Error("panic in direct_upload handler", zap.Any("panic", p), zap.Stack("stack"))
			writeError(w, errInternal, nil)
			err = nil
		}
	}()
	r = r.WithContext(upload.WithClientIP(r.Context(), clientIP(r)))
	h.route(w, r, strings.Trim(rel, "/"))
	return nil
}

func (h *Handler) route(w http.ResponseWriter, r *http.Request, rel string) {
	if serveAsset(w, r, rel) {
		return // needs no identity: the client script holds no data
	}
	parts := strings.Split(rel, "/")
	if rel == "" {
		parts = nil
	}
	if len(parts) > 0 && parts[0] == "s3" {
		h.uppy(w, r, parts[1:])
		return
	}
	// The routes, and the methods each takes.
	var allow []string
	switch {
	case len(parts) == 0, len(parts) == 1 && parts[0] == "multipart":
		allow = []string{http.MethodPost}
	case len(parts) == 1:
		allow = []string{http.MethodGet}
	case len(parts) == 2 && (parts[1] == "complete" || parts[1] == "fail"):
		allow = []string{http.MethodPost}
	case len(parts) == 2 && parts[1] == "parts":
		allow = []string{http.MethodGet, http.MethodPost}
	default:
		writeError(w, errRouteNotFound, nil)
		return
	}
	if !slices.Contains(allow, r.Method) {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, errMethodNotAllowed, nil)
		return
	}
	identity, svc, ok := h.caller(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	switch {
	case len(parts) == 0:
		h.create(w, r, svc, identity)
	case len(parts) == 1 && parts[0] == "multipart":
		var req upload.CreateRequest
		if err := readBody(r, int64(2<<10+h.MaxMetadata), &req); err != nil {
			writeError(w, err, nil)
			return
		}
		in, err := svc.CreateMultipart(ctx, h.profile, identity, req, false)
		if err != nil {
			writeError(w, err, nil)
			return
		}
		writeJSON(w, http.StatusCreated, multipartView{ID: in.ID, Key: in.Key, StagingKey: in.StagingKey, Bucket: in.Bucket, UploadID: in.UploadID,
			PartSize: in.PartSize, PartCount: in.PartCount, ExpiresAt: in.ExpiresAt, MaxSize: in.MaxSize})
	case len(parts) == 1:
		in, err := svc.Get(ctx, h.profile, identity, parts[0])
		h.answer(w, http.StatusOK, in, err)
	case parts[1] == "complete":
		var body struct {
			Parts []partRef `json:"parts"`
		}
		if err := readBody(r, 1<<20, &body); err != nil {
			writeError(w, err, nil)
			return
		}
		in, err := svc.Complete(ctx, h.profile, identity, parts[0], toParts(body.Parts))
		h.answerWithBackend(w, r, in, err)
	case parts[1] == "fail":
		var body struct {
			Reason string `json:"reason"`
		}
		if err := readBody(r, 4<<10, &body); err != nil {
			writeError(w, err, nil)
			return
		}
		in, err := svc.Fail(ctx, h.profile, identity, parts[0], body.Reason)
		h.answer(w, http.StatusOK, in, err)
	case r.Method == http.MethodGet: // parts
		ps, err := svc.Parts(ctx, h.profile, identity, parts[0])
		if err != nil {
			writeError(w, err, nil)
			return
		}
		out := make([]partRef, 0, len(ps))
		for _, p := range ps {
			out = append(out, partRef{Number: p.Number, ETag: p.ETag, Size: p.Size})
		}
		writeJSON(w, http.StatusOK, map[string]any{"parts": out})
	default: // sign parts
		var body struct {
			Numbers []int `json:"part_numbers"`
			// Sums are optional per-part SHA-256s (base64) by part number.
			Sums map[int]string `json:"checksums_sha256"`
		}
		if err := readBody(r, 16<<10, &body); err != nil {
			writeError(w, err, nil)
			return
		}
		signed, in, err := svc.SignPartsChecksummed(ctx, h.profile, identity, parts[0], body.Numbers, body.Sums)
		if err != nil {
			writeError(w, err, nil)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"parts": signed, "expires_at": in.ExpiresAt})
	}
}

// caller resolves who asks and the service, answering the error itself
// when either is missing.
func (h *Handler) caller(w http.ResponseWriter, r *http.Request) (string, *upload.Service, bool) {
	identity, err := h.identity(r)
	if err != nil {
		writeError(w, err, nil)
		return "", nil, false
	}
	svc, err := h.app.Service()
	if err != nil {
		writeError(w, upload.ErrUnavailable, nil)
		return "", nil, false
	}
	return identity, svc, true
}

// partRef is a part as the JSON API names it.
type partRef struct {
	Number int32  `json:"part_number"`
	ETag   string `json:"etag"`
	Size   int64  `json:"size,omitempty"`
}

func toParts(refs []partRef) []bucket.Part {
	out := make([]bucket.Part, 0, len(refs))
	for _, p := range refs {
		out = append(out, bucket.Part{Number: p.Number, ETag: p.ETag})
	}
	return out
}

// identity evaluates the configured identity placeholder for this request.
func (h *Handler) identity(r *http.Request) (string, error) {
	if h.Identity == "" {
		return "", nil
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return "", upload.ErrUnauthenticated
	}
	id := strings.TrimSpace(repl.ReplaceAll(h.Identity, ""))
	if id == "" || len(id) > 256 || strings.IndexFunc(id, unicode.IsControl) >= 0 {
		return "", upload.ErrUnauthenticated
	}
	return id, nil
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request, svc *upload.Service, identity string) {
	var req upload.CreateRequest
	if err := readCreate(r, int64(2<<10+h.MaxMetadata), &req); err != nil {
		writeError(w, err, nil)
		return
	}
	g, err := svc.Create(r.Context(), h.profile, identity, req)
	if err != nil {
		writeError(w, err, nil)
		return
	}
	buf := answerBufs.Get().(*[]byte)
	body := appendGrant((*buf)[:0], grantView{
		ID: g.Intent.ID, Method: g.Method, URL: g.URL, Fields: g.Fields, Headers: g.Headers,
		Key: g.Intent.Key, StagingKey: g.Intent.StagingKey, Bucket: g.Intent.Bucket, ExpiresAt: g.Intent.ExpiresAt, MaxSize: g.Intent.MaxSize,
	})
	setJSONHeaders(w)
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body)           // a Writer keeps no part of what it is given
	bucket.ReleaseFields(g.Fields) // nothing reads them after the answer
	if cap(body) <= 8<<10 {
		*buf = body
		answerBufs.Put(buf)
	}
}

// answerBufs are the buffers grants' answers are written in.
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1536); return &b }}

// readCreate is readBody for a grant request, decoded without
// encoding/json when it has the usual shape (see decodeCreateFast).
func readCreate(r *http.Request, limit int64, req *upload.CreateRequest) error {
	data, err := bodyBytes(r, limit)
	if err != nil || data == nil {
		return err
	}
	if decodeCreateFast(data, req) {
		return nil
	}
	v := new(upload.CreateRequest)
	if err := decodeJSON(data, v, true); err != nil {
		return err
	}
	*req = *v
	return nil
}

// answerWithBackend answers a completion, with the backend's JSON answer to
// the webhook when it comes within the configured wait.
func (h *Handler) answerWithBackend(w http.ResponseWriter, r *http.Request, in *store.Intent, err error) {
	wait := h.Webhook.wait()
	if in == nil || in.EventID == "" || wait <= 0 {
		h.answer(w, http.StatusOK, in, err)
		return
	}
	v := viewOf(in)
	if disp, derr := h.app.Dispatcher(); derr == nil {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		v.Backend, _ = disp.Await(ctx, in.EventID)
		cancel()
	}
	if err != nil {
		writeError(w, err, v)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// answer writes the outcome of a call about one intent.
func (h *Handler) answer(w http.ResponseWriter, status int, in *store.Intent, err error) {
	switch {
	case err == nil:
		writeJSON(w, status, viewOf(in))
	case in != nil:
		writeError(w, err, viewOf(in))
	default:
		writeError(w, err, nil)
	}
}

// readBody decodes a bounded JSON body into v, refusing unknown fields and
// trailing data. With a nil v the body must be empty or an empty object.
// An empty body decodes as {}.
func readBody(r *http.Request, limit int64, v any) error { return decodeBody(r, limit, v, true) }

// readBodyLenient is readBody for clients that send fields of their own.
func readBodyLenient(r *http.Request, limit int64, v any) error {
	return decodeBody(r, limit, v, false)
}

func decodeBody(r *http.Request, limit int64, v any, strict bool) error {
	data, err := bodyBytes(r, limit)
	if err != nil || data == nil {
		return err
	}
	if req, ok := v.(*upload.CreateRequest); ok && decodeCreateFast(data, req) {
		return nil
	}
	return decodeJSON(data, v, strict)
}

// bodyBytes reads a body of at most limit bytes that is valid UTF-8 and
// declared JSON; nil (and no error) when it is empty or only blanks.
func bodyBytes(r *http.Request, limit int64) ([]byte, error) {
	data, err := readAtMost(r.Body, limit, r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &upload.Error{Code: errBodyTooLarge.Code, Message: fmt.Sprintf("the body must be at most %d bytes", limit)}
		}
		return nil, &upload.Error{Code: errInvalidJSON.Code, Message: "reading the body failed"}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	// JSON decoding would replace invalid UTF-8 with U+FFFD, hiding it
	// from the checks after it: refuse it here, from the raw bytes.
	if field, bad := invalidUTF8(data); bad {
		if field == "filename" {
			return nil, &upload.Error{Code: upload.ErrInvalidFilename.Code, Message: "filename is not valid UTF-8"}
		}
		return nil, &upload.Error{Code: errInvalidJSON.Code, Message: "the body is not valid UTF-8"}
	}
	// The usual exact header needs no parsing.
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
			return nil, errUnsupportedMedia
		}
	}
	return data, nil
}

// readAtMost reads body to its end, or fails with *http.MaxBytesError
// past limit bytes, as io.ReadAll(http.MaxBytesReader(nil, body, limit))
// does, in one allocation when the length is declared.
func readAtMost(body io.Reader, limit, length int64) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	n := int64(512)
	if length >= 0 && length < limit {
		n = length + 1 // room to see the end without growing
	}
	buf := make([]byte, 0, n)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		m, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if int64(len(buf)) > limit {
			return nil, &http.MaxBytesError{Limit: limit}
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// decodeJSON decodes data into v with encoding/json (v nil: an object
// with no fields), refusing trailing data, and unknown fields if strict.
func decodeJSON(data []byte, v any, strict bool) error {
	if v == nil {
		v = &struct{}{}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			return &upload.Error{Code: errUnknownField.Code, Message: strings.TrimPrefix(err.Error(), "json: ")}
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &upload.Error{Code: errInvalidJSON.Code, Message: fmt.Sprintf("field %q has the wrong type", te.Field)}
		}
		return errInvalidJSON
	}
	if _, err := dec.Token(); err != io.EOF {
		return &upload.Error{Code: errInvalidJSON.Code, Message: "the body has data after the JSON value"}
	}
	return nil
}

// invalidUTF8 reports whether the body holds invalid UTF-8 and, when the
// body is an object, in which top-level field.
func invalidUTF8(data []byte) (string, bool) {
	if utf8.Valid(data) {
		return "", false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) == nil {
		for k, v := range fields {
			if !utf8.Valid(v) {
				return k, true
			}
		}
	}
	return "", true
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
