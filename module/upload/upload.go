// Package upload is the sidecar's core: it grants uploads (mints a presigned
// POST and records the intent), verifies what arrived in the bucket, and
// moves each intent through its life with the event that announces it.
//
// It knows nothing of Caddy or HTTP: the handler translates requests into
// calls here and Errors into statuses.
package upload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// Objects is what the service needs of a bucket; *bucket.Bucket has it.
type Objects interface {
	Name() string
	// PresignPost may read p.Fields during the call only: the caller
	// reuses the map afterwards.
	PresignPost(ctx context.Context, p bucket.Policy) (bucket.Post, error)
	PresignPut(ctx context.Context, r bucket.PutRequest) (bucket.Put, error)
	Stat(ctx context.Context, key string) (bucket.Object, error)
	Inspect(ctx context.Context, key string, n int64) (bucket.Object, []byte, error)
	Delete(ctx context.Context, key string) error
	CreateMultipart(ctx context.Context, m bucket.Multipart) (string, error)
	PresignPart(ctx context.Context, key, uploadID string, part int32, expires time.Duration) (string, error)
	PresignPartSHA256(ctx context.Context, key, uploadID string, part int32, expires time.Duration, sum string) (bucket.Put, error)
	ListParts(ctx context.Context, key, uploadID string) ([]bucket.Part, error)
	CompleteMultipart(ctx context.Context, key, uploadID string, parts []bucket.Part) error
	AbortMultipart(ctx context.Context, key, uploadID string) error
	Copy(ctx context.Context, src, dst, etag string, size int64, sha256 bool) (string, error)
	ObjectURL(key string) string
}

// Location is the URL of an object of the profile.
func (p *Profile) Location(key string) string { return p.Objects.ObjectURL(key) }

// MetaIntentID is the object metadata that ties an object to its intent;
// the policy pins it, so only this intent's form can create the object.
const MetaIntentID = "intent-id"

// Profile is one kind of upload (avatars, documents, ...): where it goes and
// what it may be.
type Profile struct {
	Name    string
	Objects Objects
	Key     *KeyTemplate
	// Allowed are the exact content types permitted.
	Allowed map[string]sniff.Type
	MaxSize int64
	Expires time.Duration
	// MaxMetadata bounds the compact JSON size of the client's metadata.
	MaxMetadata int
	// ContentDisposition, when set, is pinned on every object.
	ContentDisposition string
	// S3Timeout bounds each S3 call made for this profile; a call cut off
	// decides nothing and answers ErrStorageTimeout. Default: 30s
	// (DefaultS3Timeout).
	S3Timeout time.Duration
	// OnExpiry says what the sweeper does with an upload the client never
	// completed: OnExpiryFinalize (verify it, as complete would) or
	// OnExpiryDelete (delete it; the intent expires).
	OnExpiry string
	// Limits are the per-identity quotas and grant rate limit (quota.go).
	Limits Limits
	// StagingPrefix, when set, turns promotion on: grants name the key
	// StagingPrefix + the final key, and a verified object is copied to
	// its final key (see promote.go). Empty: grants name the final key.
	StagingPrefix string
	// Method is how grants upload: MethodPost (a presigned POST policy,
	// the default when empty) or MethodPut (a presigned PUT URL with
	// signed headers, for stores without POST policies; see put.go).
	Method string
	// RequireChecksum refuses grants without checksum_sha256.
	RequireChecksum bool
	// Images bound the pixel size of images (see ImageLimits).
	Images ImageLimits
	// Scan, when set, scans every verified object for malware before it
	// completes (see scan.go).
	Scan *ScanConfig
}

// What the sweeper does with uploads whose client never called complete.
const (
	OnExpiryFinalize = "finalize"
	OnExpiryDelete   = "delete"
)

// Service runs the upload flow over a store. One Service serves every
// profile of a Caddy config.
type Service struct {
	Store  store.Store
	Logger *zap.Logger
	// Now and NewID are the clock and the id source; tests replace them.
	Now   func() time.Time
	NewID func() string
	// Grace is how long after a policy's expiry an absent object is still
	// waited for: an upload that started just before expiry may land later.
	Grace time.Duration
	// OnEvent, when set, is called after each transition is stored, with
	// the id of its outbox event (to wake the webhook dispatcher).
	OnEvent func(eventID string)
	// Locks serialise work on one intent. Services of one store (the old
	// and the new config during a reload) must share them.
	Locks *Locks

	// cleanups is the work left running after an answer (cleanup.go).
	cleanups cleanups
}

// NewService returns a Service with the real clock and ids.
func NewService(st store.Store, logger *zap.Logger) *Service {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Service{Store: st, Logger: logger, Now: time.Now, NewID: NewID, Grace: time.Minute, Locks: new(Locks)}
}

// lock serialises work on one intent within this process, so concurrent
// calls verify once and all see the one outcome. The store's conflict
// detection still guards against other processes. It waits no longer
// than ctx allows: a call held up by another on the same intent answers
// busy rather than hanging with it.
func (s *Service) lock(ctx context.Context, id string) (func(), error) {
	unlock, err := s.Locks.acquire(ctx, id)
	if err != nil {
		return nil, errorf(ErrBusy, "another call on this upload is still running; try again")
	}
	return unlock, nil
}

// CreateRequest is what a client sends to ask for an upload.
type CreateRequest struct {
	Filename    string          `json:"filename"`
	ContentType string          `json:"content_type"`
	Size        int64           `json:"size"`
	Metadata    json.RawMessage `json:"metadata"`
	// ChecksumSHA256 is the file's SHA-256, base64 (optional unless the
	// profile requires it); the grant binds it (see checksum.go).
	ChecksumSHA256 string `json:"checksum_sha256"`
}

// Grant is the permission to upload: the form to post and what it allows,
// or (Method PUT) the URL to PUT the bytes to with its headers.
type Grant struct {
	Intent  *store.Intent
	Method  string
	URL     string
	Fields  map[string]string
	Headers map[string]string
}

// Create checks the request against the profile, mints the presigned POST
// and stores the intent durably, in that order: nothing leaves the sidecar
// for an intent that is not on disk.
func (s *Service) Create(ctx context.Context, p *Profile, identity string, req CreateRequest) (*Grant, error) {
	defer func(start time.Time) {
		metrics.PresignSeconds.WithLabelValues(p.Name).Observe(time.Since(start).Seconds())
	}(time.Now())
	if p.Method == MethodPut {
		return s.createPut(ctx, p, identity, req)
	}
	in, err := s.draft(p, identity, req)
	if err == nil {
		err = s.admit(ctx, p, in)
	}
	if err != nil {
		return nil, err
	}
	minSize := int64(1)
	if req.Size > 0 {
		minSize = req.Size
	}
	formFields := formFieldMaps.Get().(map[string]string)
	defer func() { clear(formFields); formFieldMaps.Put(formFields) }()
	formFields["success_action_status"] = "201"
	formFields["x-amz-meta-"+MetaIntentID] = in.ID
	if p.ContentDisposition != "" {
		formFields["Content-Disposition"] = p.ContentDisposition
	}
	if in.ChecksumSHA256 != "" {
		// Pinned by an exact condition: the store computes the SHA-256
		// of what arrives and refuses a mismatch (400 BadDigest).
		formFields["x-amz-checksum-sha256"] = in.ChecksumSHA256
	}
	post, err := p.objects().PresignPost(ctx, bucket.Policy{
		Key: UploadKey(in), ContentType: in.ContentType, MinSize: minSize, MaxSize: in.MaxSize,
		Expiration: in.ExpiresAt, Fields: formFields,
	})
	if err != nil {
		metrics.S3Errors.WithLabelValues(p.Name, "presign").Inc()
		return nil, logStorageErr(s.Logger.Error, "presigning failed", err, zap.String("profile", p.Name))
	}
	if err := s.save(ctx, in); err != nil {
		return nil, err
	}
	return &Grant{Intent: in, Method: MethodPost, URL: post.URL, Fields: post.Fields}, nil
}

// formFieldMaps are the maps of a grant's own form fields, given to
// PresignPost (which copies them) and reused: two allocations a grant.
var formFieldMaps = sync.Pool{New: func() any { return make(map[string]string, 4) }}

// draft validates a request for an upload and makes its pending intent:
// a new id, the server's key, the expiry, and a size bound (the declared
// size, or the profile's maximum). Nothing is stored yet.
func (s *Service) draft(p *Profile, identity string, req CreateRequest) (*store.Intent, error) {
	ct, typ, name, meta, err := checkRequest(p, req)
	if err != nil {
		return nil, err
	}
	if err := checkChecksum(p, req.ChecksumSHA256); err != nil {
		return nil, err
	}
	now := s.Now().UTC()
	id := s.NewID()
	maxSize := p.MaxSize
	if req.Size > 0 {
		maxSize = req.Size
	}
	key := p.Key.Render(KeyValues{ID: id, Ext: typ.Ext, Profile: p.Name, Identity: identity, Time: now})
	staging, err := p.stagingKey(key)
	if err != nil {
		return nil, err
	}
	return &store.Intent{
		ID: id, Profile: p.Name, Bucket: p.Objects.Name(), Key: key, StagingKey: staging,
		ChecksumSHA256: req.ChecksumSHA256,
		Filename:       name, ContentType: ct, Size: req.Size, MaxSize: maxSize, Metadata: meta,
		Identity: identity, Status: store.StatusPending,
		CreatedAt: now, ExpiresAt: expiry(now, p.Expires), UpdatedAt: now,
	}, nil
}

// save stores a drafted intent durably; only then may its grant leave the
// sidecar.
func (s *Service) save(ctx context.Context, in *store.Intent) error {
	if err := s.Store.Create(ctx, in); err != nil {
		if qe, ok := quotaErr(in.Profile, err); ok {
			return qe
		}
		s.Logger.Error("storing intent failed", zap.String("intent_id", in.ID), zap.Error(err))
		return ErrUnavailable
	}
	// Debug, not info: a grant is no transition, and a line per grant costs
	// a write on the hot path. Transitions are logged at info. The fields
	// are built only when the line is written.
	if ce := s.Logger.Check(zap.DebugLevel, "upload granted"); ce != nil {
		fields := []zap.Field{
			zap.String("intent_id", in.ID), zap.String("profile", in.Profile), zap.String("key", in.Key),
			zap.String("content_type", in.ContentType), zap.Int64("max_size", in.MaxSize),
		}
		if in.UploadID != "" {
			fields = append(fields, zap.Int("parts", in.PartCount))
		}
		if in.Filename != "" {
			// Quoted to ASCII: a filename reaches the log escaped, whatever it holds.
			fields = append(fields, zap.String("filename", strconv.QuoteToASCII(in.Filename)))
		}
		ce.Write(fields...)
	}
	metrics.IntentsCreated.WithLabelValues(in.Profile).Inc()
	return nil
}

// expiry is when a grant made at now stops working: S3 reads a policy's
// expiration to the whole second, so it is rounded up to one. The intent
// records the same instant, and the grant never lasts less than asked.
func expiry(now time.Time, d time.Duration) time.Time {
	t := now.Add(d)
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}

// checkRequest validates a request for an upload against the profile and
// returns its normalized type, the type's facts, the filename and metadata.
func checkRequest(p *Profile, req CreateRequest) (string, sniff.Type, string, json.RawMessage, error) {
	ct, err := normalizeType(req.ContentType)
	if err != nil {
		return "", sniff.Type{}, "", nil, err
	}
	typ, ok := p.Allowed[ct]
	if !ok {
		return "", sniff.Type{}, "", nil, errorf(ErrTypeNotAllowed, "content type %q is not allowed here", ct)
	}
	if req.Size < 0 {
		return "", sniff.Type{}, "", nil, errorf(ErrInvalidRequest, "size must not be negative")
	}
	if req.Size > p.MaxSize {
		return "", sniff.Type{}, "", nil, errorf(ErrTooLarge, "size %d is over the limit of %d bytes", req.Size, p.MaxSize)
	}
	name, err := cleanFilename(req.Filename)
	if err != nil {
		return "", sniff.Type{}, "", nil, err
	}
	meta, err := cleanMetadata(req.Metadata, p.MaxMetadata)
	if err != nil {
		return "", sniff.Type{}, "", nil, err
	}
	return ct, typ, name, meta, nil
}

// Get returns the intent if it belongs to the profile and the identity.
// Anything else is ErrNotFound, so ids of other users reveal nothing.
func (s *Service) Get(ctx context.Context, p *Profile, identity, id string) (*store.Intent, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	in, err := s.Store.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, ErrNotFound
	case err != nil:
		s.Logger.Error("reading intent failed", zap.String("intent_id", id), zap.Error(err))
		return nil, ErrUnavailable
	}
	if in.Profile != p.Name || in.Identity != identity {
		return nil, ErrNotFound
	}
	return in, nil
}

// Complete verifies the uploaded object and finalizes the intent: completed
// if the object is what was permitted, rejected (and the object deleted) if
// not. Calling it again returns the recorded outcome. A rejected intent is
// returned together with an ErrRejected error.
//
// For a multipart upload, parts (when given) are first assembled into the
// object; the object is then verified like any other.
func (s *Service) Complete(ctx context.Context, p *Profile, identity, id string, parts []bucket.Part) (*store.Intent, error) {
	defer func(start time.Time) {
		metrics.CompleteSeconds.WithLabelValues(p.Name).Observe(time.Since(start).Seconds())
	}(time.Now())
	return s.withPending(ctx, p, identity, id, store.StatusCompleted, func(in *store.Intent) (*store.Intent, error) {
		if len(parts) > 0 {
			if err := s.assemble(ctx, p, in, parts); err != nil {
				return nil, err
			}
		}
		// The client waits for the outcome, not for the staging object's
		// deletion (cleanup.go).
		return s.settle(withAnswerFirst(ctx), p, in)
	})
}

// Fail records the client's report that its upload failed, and deletes
// whatever part of the object arrived. Calling it again succeeds.
func (s *Service) Fail(ctx context.Context, p *Profile, identity, id, reason string) (*store.Intent, error) {
	return s.withPending(ctx, p, identity, id, store.StatusFailed, func(in *store.Intent) (*store.Intent, error) {
		if in.Rejecting {
			// A rejection was already decided: it ends as rejected.
			return s.carryOutRejection(ctx, p, in, verdict{reason: Reason(in.Reason), detail: in.Detail}, store.StatusFailed)
		}
		if in.Promoting {
			// A promotion was already decided: it ends as completed.
			return s.carryOutPromotion(ctx, p, in, verdict{}, store.StatusFailed)
		}
		at := s.Now() // an upload landing after the delete started is not gone
		if err := s.abort(ctx, p, in); err != nil {
			return nil, err
		}
		if err := p.objects().Delete(ctx, UploadKey(in)); err != nil {
			s.Logger.Warn("deleting failed upload's object failed; nothing decided",
				zap.String("intent_id", id), zap.String("key", in.Key), zap.Error(err))
			metrics.S3Errors.WithLabelValues(in.Profile, "delete").Inc()
			return nil, storageErr(err)
		}
		if err := s.dropLostCopy(ctx, p, in); err != nil {
			return nil, err
		}
		return s.finishFor(ctx, in, store.StatusFailed, verdict{reason: ReasonClientReported, detail: cleanReason(reason), at: at}, store.StatusFailed)
	})
}

// withPending runs fn on the intent, under its lock, if it is still
// pending; otherwise it returns the recorded outcome for a call that wanted
// the intent to end as wanted. Access is checked before the lock is taken,
// so strangers cannot hold an intent's lock.
func (s *Service) withPending(ctx context.Context, p *Profile, identity, id string, wanted store.Status, fn func(*store.Intent) (*store.Intent, error)) (*store.Intent, error) {
	if _, err := s.Get(ctx, p, identity, id); err != nil {
		return nil, err
	}
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	in, err := s.Get(ctx, p, identity, id)
	if err != nil {
		return nil, err
	}
	if in.Status != store.StatusPending {
		return in, outcomeErr(in, wanted)
	}
	if err := s.sameBucket(p, in); err != nil {
		return nil, err
	}
	return fn(in)
}

// sameBucket refuses to act on an intent whose bucket is no longer the
// profile's (its config changed): its object is elsewhere, and deciding
// from this bucket would be deciding blind.
func (s *Service) sameBucket(p *Profile, in *store.Intent) error {
	if in.Bucket == p.Objects.Name() {
		return nil
	}
	s.Logger.Warn("intent's bucket is not the profile's; left as it is",
		zap.String("intent_id", in.ID), zap.String("profile", in.Profile), zap.String("bucket", in.Bucket))
	return ErrMoved
}

// settle decides a pending intent from what is in the bucket: completed,
// rejected (object deleted), expired (nothing arrived, grace passed), or
// nothing at all when the object is not there yet or S3 fails.
func (s *Service) settle(ctx context.Context, p *Profile, in *store.Intent) (*store.Intent, error) {
	if in.Rejecting {
		// A rejection was decided before a crash or an S3 error stopped
		// it: finish it, whatever is in the bucket now.
		return s.carryOutRejection(ctx, p, in, verdict{reason: Reason(in.Reason), detail: in.Detail}, store.StatusCompleted)
	}
	if in.Promoting {
		// A promotion was decided before a crash or an S3 error stopped
		// it: finish it.
		return s.carryOutPromotion(ctx, p, in, verdict{}, store.StatusCompleted)
	}
	v, err := s.verify(ctx, p, in)
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		// Absent when the read started: only then may it count as never
		// arriving.
		if v.at.Before(s.settleAfter(in)) {
			return nil, ErrObjectMissing
		}
		if err := s.abort(ctx, p, in); err != nil {
			return nil, err
		}
		return s.finishFor(ctx, in, store.StatusExpired, verdict{reason: ReasonExpired, detail: "no object arrived before the permission expired", at: v.at}, store.StatusCompleted)
	case err != nil:
		metrics.S3Errors.WithLabelValues(in.Profile, "verify").Inc()
		if errors.Is(err, bucket.ErrChanged) {
			s.Logger.Warn("verifying object failed; nothing decided",
				zap.String("intent_id", in.ID), zap.String("profile", in.Profile), zap.String("key", in.Key), zap.Error(err))
			return nil, ErrBusy
		}
		return nil, logStorageErr(s.Logger.Warn, "verifying object failed; nothing decided", err,
			zap.String("intent_id", in.ID), zap.String("profile", in.Profile), zap.String("key", in.Key))
	}
	if v.reason == "" && p.Scan != nil {
		if out, done, err := s.scanObject(ctx, p, in, &v); done {
			return out, err
		}
	}
	if v.reason == "" && in.StagingKey != "" {
		return s.decidePromotion(ctx, p, in, v, store.StatusCompleted)
	}
	if v.reason == "" {
		return s.finishFor(ctx, in, store.StatusCompleted, v, store.StatusCompleted)
	}
	return s.decideRejection(ctx, p, in, v, store.StatusCompleted)
}

// decideRejection records the verdict on the intent first, then carries it
// out: if the process dies after the deletion, the next call still knows
// why the object is gone and finishes the rejection.
func (s *Service) decideRejection(ctx context.Context, p *Profile, in *store.Intent, v verdict, wanted store.Status) (*store.Intent, error) {
	noted, err := s.Store.Annotate(ctx, in.ID, in.Status, func(x *store.Intent) {
		x.Reason, x.Detail, x.Rejecting = string(v.reason), v.detail, true
		x.ObjectSize, x.ObjectType, x.ETag = v.obj.Size, v.sniffed, v.obj.ETag
		x.Width, x.Height = v.width, v.height
	})
	if err != nil {
		return s.afterStoreErr(ctx, in, err, wanted)
	}
	return s.carryOutRejection(ctx, p, noted, v, wanted)
}

// carryOutRejection deletes the object of a rejected upload, then records
// the rejection with its event.
func (s *Service) carryOutRejection(ctx context.Context, p *Profile, in *store.Intent, v verdict, wanted store.Status) (*store.Intent, error) {
	if v.at.IsZero() { // resumed: the deletion is the look that decides
		v.at = s.Now()
	}
	if err := s.quarantine(ctx, p, in, &v); err != nil {
		return nil, err
	}
	if in.StagingKey != "" {
		// A promotion's copy may have reached the final key (a checksum
		// found wrong on the copy): it goes too.
		if err := p.objects().Delete(ctx, in.Key); err != nil {
			s.Logger.Warn("deleting rejected object's copy failed; will finish on the next call",
				zap.String("intent_id", in.ID), zap.String("key", in.Key), zap.Error(err))
			metrics.S3Errors.WithLabelValues(in.Profile, "delete").Inc()
			return nil, storageErr(err)
		}
	}
	if err := p.objects().Delete(ctx, UploadKey(in)); err != nil {
		s.Logger.Warn("deleting rejected object failed; will finish on the next call",
			zap.String("intent_id", in.ID), zap.String("key", UploadKey(in)), zap.Error(err))
		metrics.S3Errors.WithLabelValues(in.Profile, "delete").Inc()
		return nil, storageErr(err)
	}
	if v.obj.ETag == "" { // resumed: what was measured is on the intent
		v.obj, v.sniffed = bucket.Object{Size: in.ObjectSize, ETag: in.ETag}, in.ObjectType
		v.width, v.height = in.Width, in.Height
	}
	return s.transition(ctx, in, in.Status, store.StatusRejected, v, wanted)
}

// outcomeErr is what a repeated call returns for an intent that is already
// final: nothing if it ended the way the call asks for, else the error
// that describes how it ended.
func outcomeErr(in *store.Intent, wanted store.Status) error {
	switch {
	case in.Status == wanted:
		return nil
	case in.Status == store.StatusRejected && wanted == store.StatusCompleted:
		return errorf(ErrRejected, "%s", in.Detail)
	case in.Status == store.StatusExpired:
		return ErrExpired
	}
	return errorf(ErrFinalized, "the upload is already %s", in.Status)
}

// verdict is what verification found; an empty reason means valid.
type verdict struct {
	obj     bucket.Object
	sniffed string
	reason  Reason
	detail  string
	// at is when the look at the bucket that decided started: whether the
	// intent is settled is judged from then, not from when the answer
	// came, since the object could still change while the read ran.
	at time.Time
	// unsettled keeps the intent unsettled whatever at says: something is
	// left to clean up (a promotion's staging object).
	unsettled bool
	// width and height of an image whose header was read.
	width, height int
	// event, when set, replaces the transition's usual event type.
	event string
}

// verify looks at the object: its size, stored type, ETag and metadata
// and its first bytes, all from one ranged GET, so they describe the same
// version of the object; the real type is sniffed from the bytes.
func (s *Service) verify(ctx context.Context, p *Profile, in *store.Intent) (verdict, error) {
	at := s.Now()
	obj, head, err := p.objects().Inspect(ctx, UploadKey(in), headLen(in))
	if err != nil {
		return verdict{at: at}, err
	}
	v := verdict{obj: obj, at: at}
	switch {
	case obj.Metadata[MetaIntentID] != in.ID:
		v.reason, v.detail = ReasonForeignObject, "the object was not uploaded with this intent's form"
	case obj.Size < 1:
		v.reason, v.detail = ReasonEmpty, "the object is empty"
	case obj.Size > in.MaxSize:
		v.reason, v.detail = ReasonTooLarge, fmt.Sprintf("the object has %d bytes, more than the %d allowed", obj.Size, in.MaxSize)
	case in.Size > 0 && obj.Size != in.Size:
		v.reason, v.detail = ReasonSizeMismatch, fmt.Sprintf("the object has %d bytes, not the %d declared", obj.Size, in.Size)
	case !sameType(obj.ContentType, in.ContentType):
		v.reason, v.detail = ReasonTypeMismatch, fmt.Sprintf("the object is stored as %q, not %q", obj.ContentType, in.ContentType)
	}
	if v.reason != "" {
		return v, nil
	}
	v.sniffed = sniff.Detect(head)
	if !sniff.Match(in.ContentType, v.sniffed) {
		got := v.sniffed
		if got == sniff.Unknown {
			got = "unrecognised data"
		}
		v.reason, v.detail = ReasonContentMismatch, fmt.Sprintf("the content is %s, not %s", got, in.ContentType)
		return v, nil
	}
	if err := checkImage(ctx, p, in, &v, head); err != nil || v.reason != "" {
		return v, err
	}
	if in.ChecksumSHA256 != "" && in.StagingKey == "" {
		// Under promotion the copy's checksum is compared instead.
		stored, err := storedChecksum(ctx, p.objects(), in.Profile, UploadKey(in), obj.ETag)
		if err != nil {
			return verdict{at: at}, err
		}
		v.reason, v.detail = checksumVerdict(in, stored)
	}
	return v, nil
}

func sameType(stored, declared string) bool {
	ct, err := normalizeType(stored)
	return err == nil && ct == declared
}

// finishFor writes the transition of a pending intent to status to, with its
// event, for a call that wanted the intent to end as wanted; the error says
// how the intent ended if not as wanted. If another process moved the
// intent first, its recorded outcome is returned.
func (s *Service) finishFor(ctx context.Context, in *store.Intent, to store.Status, v verdict, wanted store.Status) (*store.Intent, error) {
	return s.transition(ctx, in, in.Status, to, v, wanted)
}

// transition moves the intent from one status to another (a recheck moves
// a completed intent on), with its event; see finishFor.
func (s *Service) transition(ctx context.Context, in *store.Intent, from, to store.Status, v verdict, wanted store.Status) (*store.Intent, error) {
	now := s.Now().UTC()
	evType := map[store.Status]string{
		store.StatusCompleted: store.EventCompleted,
		store.StatusRejected:  store.EventRejected,
		store.StatusFailed:    store.EventFailed,
		store.StatusExpired:   store.EventExpired,
	}[to]
	if v.event != "" {
		evType = v.event
	}
	out, err := s.Store.Update(ctx, in.ID, from, func(x *store.Intent) (store.Event, error) {
		x.Status = to
		x.UpdatedAt = now
		x.Reason, x.Detail, x.Rejecting, x.Promoting, x.Scanning = string(v.reason), v.detail, false, false, false
		if v.obj.Size > 0 || v.obj.ETag != "" {
			x.ObjectSize, x.ObjectType, x.ETag, x.VerifiedAt = v.obj.Size, v.sniffed, v.obj.ETag, now
			x.Width, x.Height = v.width, v.height
		}
		// Once the policy has expired (and the grace for uploads in flight
		// passed), the object can no longer change through this product;
		// judged from when the deciding read started (see verdict.at).
		x.Settled = !v.unsettled && !v.at.IsZero() && !v.at.Before(s.settleAfter(x))
		return store.Event{ID: "evt_" + s.NewID(), Type: evType, CreatedAt: now}, nil
	})
	if err != nil {
		return s.afterStoreErr(ctx, in, err, wanted)
	}
	fields := []zap.Field{
		zap.String("intent_id", out.ID), zap.String("profile", out.Profile), zap.String("key", out.Key),
		zap.String("status", string(out.Status)), zap.String("event", evType),
	}
	if out.Reason != "" {
		fields = append(fields, zap.String("reason", out.Reason))
	}
	if out.ETag != "" {
		fields = append(fields, zap.Int64("size", out.ObjectSize), zap.String("etag", out.ETag))
	}
	s.Logger.Info("upload "+string(out.Status), fields...)
	metrics.IntentsFinalized.WithLabelValues(out.Profile, string(out.Status)).Inc()
	if s.OnEvent != nil {
		s.OnEvent(out.EventID)
	}
	return out, outcomeErr(out, wanted)
}

// afterStoreErr answers a failed store write: if another process moved the
// intent first, its recorded outcome; otherwise nothing was decided.
func (s *Service) afterStoreErr(ctx context.Context, in *store.Intent, err error, wanted store.Status) (*store.Intent, error) {
	if errors.Is(err, store.ErrStateChanged) || errors.Is(err, store.ErrConflict) {
		cur, gerr := s.Store.Get(ctx, in.ID)
		if gerr != nil {
			return nil, ErrUnavailable
		}
		if cur.Status == in.Status {
			return nil, ErrBusy // a concurrent change of the same status: try again
		}
		return cur, outcomeErr(cur, wanted)
	}
	s.Logger.Error("writing intent failed; nothing decided", zap.String("intent_id", in.ID), zap.Error(err))
	return nil, ErrUnavailable
}

// normalizeType lowercases a content type and drops its parameters.
func normalizeType(s string) (string, error) {
	if s == "" {
		return "", errorf(ErrInvalidRequest, "content_type is required")
	}
	if len(s) <= 127 && plainMediaType(s) {
		return s, nil // what ParseMediaType returns for it, without its map
	}
	mt, _, err := mime.ParseMediaType(s)
	if err != nil || len(mt) > 127 {
		return "", errorf(ErrInvalidRequest, "content_type %s is not a media type", strconv.QuoteToASCII(s))
	}
	return mt, nil
}

// plainMediaType reports whether s is type/subtype in lowercase token
// characters only, no parameters and no spaces: a media type that
// mime.ParseMediaType returns unchanged.
func plainMediaType(s string) bool {
	slash := -1
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		case c == '/' && slash < 0:
			slash = i
		default:
			return false
		}
	}
	return slash > 0 && slash < len(s)-1
}

// cleanFilename keeps the last path element of the client's name for the
// record (it never becomes a key) and refuses names that would mislead a
// person reading them: control characters, bidirectional overrides,
// invalid UTF-8.
func cleanFilename(s string) (string, error) {
	if len(s) > 1024 {
		return "", errorf(ErrInvalidFilename, "filename is longer than 1024 bytes")
	}
	if !utf8.ValidString(s) {
		return "", errorf(ErrInvalidFilename, "filename is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029' {
			return "", errorf(ErrInvalidFilename, "filename contains control or bidirectional characters")
		}
	}
	s = strings.ReplaceAll(s, `\`, "/")
	base := path.Base(s)
	if base == "." || base == "/" || base == ".." {
		base = ""
	}
	if len(base) > 255 {
		return "", errorf(ErrInvalidFilename, "filename is longer than 255 bytes")
	}
	return base, nil
}

func cleanMetadata(raw json.RawMessage, limit int) (json.RawMessage, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if len(raw) > 0 && raw[0] != '{' {
		return nil, ErrInvalidMetadata
	}
	if compactJSON(raw) && json.Valid(raw) {
		// What json.Compact would return: no copy needed.
		if len(raw) > limit {
			return nil, errorf(ErrMetadataTooLarge, "metadata is %d bytes; at most %d allowed", len(raw), limit)
		}
		return raw[:len(raw):len(raw)], nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, ErrInvalidMetadata
	}
	if buf.Len() > limit {
		return nil, errorf(ErrMetadataTooLarge, "metadata is %d bytes; at most %d allowed", buf.Len(), limit)
	}
	return buf.Bytes(), nil
}

// compactJSON reports whether raw has no blank outside its strings:
// json.Compact would give it back unchanged if it is valid JSON.
func compactJSON(raw []byte) bool {
	inString := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return true
}

// cleanReason keeps a client's failure reason printable and short.
func cleanReason(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 256 {
			break
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
}
