package upload

import (
	"fmt"
	"time"
)

// Error is a failure a client can act on: a stable machine-readable code and
// a message for people. The HTTP handler maps codes to statuses.
type Error struct {
	Code    string
	Message string
	// RetryAfter, when positive, is when trying again may succeed.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is makes errors.Is match on the code alone, so callers compare with the
// sentinels below whatever the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func newError(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// errorf returns an error with the code of base and a specific message.
func errorf(base *Error, format string, a ...any) *Error {
	return &Error{Code: base.Code, Message: fmt.Sprintf(format, a...)}
}

// The stable error codes of the upload API. docs/errors.md lists them with their
// HTTP statuses; never change a code, only add new ones.
var (
	ErrInvalidRequest   = newError("invalid_request", "the request is not valid")
	ErrInvalidFilename  = newError("invalid_filename", "the filename is not acceptable")
	ErrInvalidMetadata  = newError("invalid_metadata", "metadata must be a JSON object")
	ErrMetadataTooLarge = newError("metadata_too_large", "metadata is too large")
	ErrTypeNotAllowed   = newError("type_not_allowed", "this content type is not allowed")
	ErrTooLarge         = newError("too_large", "the file is larger than allowed")
	ErrUnauthenticated  = newError("unauthenticated", "no identity: log in first")
	ErrNotFound         = newError("not_found", "no such upload")
	ErrObjectMissing    = newError("object_missing", "the object is not in the bucket yet")
	ErrFinalized        = newError("intent_finalized", "the upload is already finalized")
	ErrExpired          = newError("expired", "the upload permission expired before the object arrived")
	ErrRejected         = newError("upload_rejected", "the uploaded object was rejected")
	ErrStorage          = newError("storage_error", "the object storage failed; try again")
	ErrStorageTimeout   = newError("storage_timeout", "the object storage did not answer in time; nothing was decided, try again")
	ErrUnavailable      = newError("store_unavailable", "the upload service is not ready; try again")
	ErrBusy             = newError("busy", "the upload changed concurrently; try again")
	ErrInvalidParts     = newError("invalid_parts", "the parts do not make up the upload")
	ErrSizeRequired     = newError("size_required", "this upload needs the file's size in bytes (size) when asking for it")
	ErrChecksumRequired = newError("checksum_required", "this upload needs the file's SHA-256 (checksum_sha256, base64) when asking for it")
	ErrMoved            = newError("bucket_changed", "this upload's bucket is no longer the route's; nothing was decided")
	// Grants refused by a quota or the rate limit (quota.go).
	ErrQuotaExceeded = newError("quota_exceeded", "a quota of this identity is used up")
	ErrRateLimited   = newError("rate_limited", "too many grants asked for; try again later")
	// The malware scanner is unreachable and the profile fails closed:
	// the upload waits, nothing is decided (scan.go).
	ErrScanPending = newError("scan_pending", "the upload waits for the malware scan; the scanner is not reachable now, try again later")
)
