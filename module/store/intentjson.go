package store

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// marshalIntent is json.Marshal(in), byte for byte, written without
// reflection: every grant and transition stores one. What it does not
// write the same way itself (metadata json.Marshal would re-compact or
// escape, times json cannot encode) goes through json.Marshal.
func marshalIntent(in *Intent) ([]byte, error) {
	return appendIntent(make([]byte, 0, intentSize(in)), in)
}

// intentSize is room enough for most intents' encoding.
func intentSize(in *Intent) int { return 512 + len(in.Metadata) }

// appendIntent appends marshalIntent(in) to b.
func appendIntent(b []byte, in *Intent) ([]byte, error) {
	if !plainJSON(in.Metadata) || !jsonTime(in.CreatedAt) || !jsonTime(in.ExpiresAt) || !jsonTime(in.UpdatedAt) ||
		!in.VerifiedAt.IsZero() && !jsonTime(in.VerifiedAt) {
		v, err := json.Marshal(in)
		return append(b, v...), err
	}
	b = append(b, `{"id":`...)
	b = appendString(b, in.ID)
	b = append(b, `,"profile":`...)
	b = appendString(b, in.Profile)
	b = append(b, `,"bucket":`...)
	b = appendString(b, in.Bucket)
	b = append(b, `,"key":`...)
	b = appendString(b, in.Key)
	if in.Filename != "" {
		b = append(b, `,"filename":`...)
		b = appendString(b, in.Filename)
	}
	b = append(b, `,"content_type":`...)
	b = appendString(b, in.ContentType)
	if in.Size != 0 {
		b = strconv.AppendInt(append(b, `,"size":`...), in.Size, 10)
	}
	b = strconv.AppendInt(append(b, `,"max_size":`...), in.MaxSize, 10)
	if len(in.Metadata) > 0 {
		b = append(append(b, `,"metadata":`...), in.Metadata...)
	}
	if in.Identity != "" {
		b = append(b, `,"identity":`...)
		b = appendString(b, in.Identity)
	}
	if q := in.Quota; q != nil {
		b = append(b, `,"quota":{"subject":`...)
		b = appendString(b, q.Subject)
		b = strconv.AppendInt(append(b, `,"reserved":`...), q.Reserved, 10)
		if q.BucketSeconds != 0 {
			b = strconv.AppendInt(append(b, `,"bucket_seconds":`...), q.BucketSeconds, 10)
		}
		b = append(b, '}')
	}
	if in.ChecksumSHA256 != "" {
		b = append(b, `,"checksum_sha256":`...)
		b = appendString(b, in.ChecksumSHA256)
	}
	if in.UploadID != "" {
		b = append(b, `,"upload_id":`...)
		b = appendString(b, in.UploadID)
	}
	if in.PartSize != 0 {
		b = strconv.AppendInt(append(b, `,"part_size":`...), in.PartSize, 10)
	}
	if in.PartCount != 0 {
		b = strconv.AppendInt(append(b, `,"part_count":`...), int64(in.PartCount), 10)
	}
	b = append(b, `,"status":`...)
	b = appendString(b, string(in.Status))
	b = appendTime(append(b, `,"created_at":`...), in.CreatedAt)
	b = appendTime(append(b, `,"expires_at":`...), in.ExpiresAt)
	b = appendTime(append(b, `,"updated_at":`...), in.UpdatedAt)
	if in.ObjectSize != 0 {
		b = strconv.AppendInt(append(b, `,"object_size":`...), in.ObjectSize, 10)
	}
	for _, f := range [...]struct{ name, v string }{
		{`,"object_type":`, in.ObjectType}, {`,"etag":`, in.ETag}, {`,"reason":`, in.Reason}, {`,"detail":`, in.Detail},
	} {
		if f.v != "" {
			b = appendString(append(b, f.name...), f.v)
		}
	}
	if !in.VerifiedAt.IsZero() {
		b = appendTime(append(b, `,"verified_at":`...), in.VerifiedAt)
	}
	if in.EventID != "" {
		b = appendString(append(b, `,"event_id":`...), in.EventID)
	}
	if len(in.Events) > 0 {
		b = append(b, `,"events":[`...)
		for i, e := range in.Events {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, e)
		}
		b = append(b, ']')
	}
	if in.Settled {
		b = append(b, `,"settled":true`...)
	}
	if in.Rejecting {
		b = append(b, `,"rejecting":true`...)
	}
	if in.StagingKey != "" {
		b = appendString(append(b, `,"staging_key":`...), in.StagingKey)
	}
	if in.Promoting {
		b = append(b, `,"promoting":true`...)
	}
	if in.Damaged != "" {
		b = appendString(append(b, `,"damaged":`...), in.Damaged)
	}
	if in.Width != 0 {
		b = strconv.AppendInt(append(b, `,"width":`...), int64(in.Width), 10)
	}
	if in.Height != 0 {
		b = strconv.AppendInt(append(b, `,"height":`...), int64(in.Height), 10)
	}
	if in.Scanning {
		b = append(b, `,"scanning":true`...)
	}
	for _, f := range [...]struct{ name, v string }{
		{`,"scan":`, in.Scan}, {`,"threat":`, in.Threat}, {`,"quarantine_key":`, in.QuarantineKey},
	} {
		if f.v != "" {
			b = appendString(append(b, f.name...), f.v)
		}
	}
	return append(b, '}'), nil
}

// appendString appends s quoted as encoding/json quotes it; a string with
// anything it would escape is left to it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			data, _ := json.Marshal(s)
			return append(b, data...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// plainJSON reports whether json.Marshal writes raw unchanged: valid,
// and nothing its compaction or HTML escaping could rewrite (no blank or
// control byte, inside strings or out, no <, > or &, and ASCII only, which
// rules out U+2028/2029). Empty metadata is omitted, so it is plain too.
func plainJSON(raw json.RawMessage) bool {
	for _, c := range raw {
		if c <= ' ' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			return false
		}
	}
	return len(raw) == 0 || json.Valid(raw)
}

// jsonTime reports whether t.MarshalJSON succeeds (a four-digit year).
func jsonTime(t time.Time) bool { y := t.Year(); return y >= 0 && y <= 9999 }

// appendTime appends t quoted as Time.MarshalJSON writes it.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}
