package upload

// Reason says why an intent ended as it did. Reasons reach clients (the
// intent's view) and backends (webhook payloads), so they are stable
// codes: never change one, only add new ones, each to Reasons.
type Reason string

// The reasons an intent carries.
const (
	// Verification of the object.
	ReasonForeignObject   Reason = "foreign_object"
	ReasonEmpty           Reason = "empty"
	ReasonTooLarge        Reason = "too_large"
	ReasonSizeMismatch    Reason = "size_mismatch"
	ReasonTypeMismatch    Reason = "type_mismatch"
	ReasonContentMismatch Reason = "content_mismatch"
	// Image limits (ImageLimits), read from the header without decoding.
	ReasonImageTooLarge   Reason = "image_too_large"
	ReasonImageUnreadable Reason = "image_unreadable"
	// Integrity: the declared checksum (see checksum.go).
	ReasonChecksumMismatch Reason = "checksum_mismatch"
	// The malware scan (scan.go).
	ReasonMalwareFound Reason = "malware_found"
	ReasonScanRefused  Reason = "scan_refused"
	// The intent's life.
	ReasonExpired        Reason = "expired"
	ReasonNotCompleted   Reason = "not_completed"
	ReasonClientReported Reason = "client_reported"
	ReasonOverwritten    Reason = "overwritten"
)

// Reasons lists every reason with what it means, for documentation and
// for tests that check none is missing.
var Reasons = map[Reason]string{
	ReasonForeignObject:   "the object was not uploaded with this intent's form (rejected)",
	ReasonEmpty:           "the object is empty (rejected)",
	ReasonTooLarge:        "the object is larger than allowed (rejected)",
	ReasonSizeMismatch:    "the object's size is not the declared one (rejected)",
	ReasonTypeMismatch:    "the object is stored with another content type (rejected)",
	ReasonContentMismatch: "the object's bytes are not of its content type (rejected)",
	ReasonImageTooLarge:   "the image's width, height or pixel count is over the profile's limit (rejected)",
	ReasonImageUnreadable: "the image's dimensions could not be read while the profile limits them (rejected)",
	ReasonExpired:         "no object arrived before the permission expired (expired)",
	ReasonNotCompleted:    "the client never completed; on_expiry delete removed any object (expired)",
	ReasonClientReported:  "the client reported the upload as failed (failed)",
	ReasonOverwritten:     "the object was replaced, validly, before the permission expired (completed)",
	// The malware scan.
	ReasonMalwareFound: "the malware scanner found a signature in the object; it was moved to the quarantine prefix or deleted (rejected, event upload.quarantined)",
	ReasonScanRefused:  "the malware scanner refused the object (over its StreamMaxLength, or another scanner error) and the profile fails closed (rejected)",
	// Integrity.
	ReasonChecksumMismatch: "the store's SHA-256 of the object is not the declared checksum_sha256, or the store kept none (rejected)",
}
