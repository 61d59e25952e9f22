package handler

import (
	"encoding/json"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

// decodeCreateFast decodes the usual grant request without encoding/json,
// which costs a grant a dozen allocations: an object whose keys are exactly
// CreateRequest's JSON names, its strings without escapes, its size a plain
// integer, its metadata any JSON value. It reports false, leaving req as it
// was, for anything else (unknown or differently cased keys, escapes,
// nulls, numbers with a fraction or exponent, invalid JSON), and the caller
// then decodes with encoding/json, which gives the same errors as always.
// What it accepts it decodes exactly as encoding/json would
// (FuzzDecodeCreateFast compares both).
//
// data must be valid UTF-8 (decodeBody refuses other bodies first) and is
// kept: Metadata aliases it.
func decodeCreateFast(data []byte, req *upload.CreateRequest) bool {
	// Valid is a scan without allocations; once the body is known to be
	// one valid JSON value, the parse below only has to find its parts.
	if !json.Valid(data) {
		return false
	}
	var s string // data as a string, made once for all the string fields
	str := func(b []byte, i, j int) string {
		if s == "" {
			s = string(b)
		}
		return s[i:j]
	}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	var out upload.CreateRequest
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		*req = out
		return true
	}
	for {
		// A key: valid JSON, so a string; escapes go the slow way.
		ks, ke, ok := plainString(data, i)
		if !ok {
			return false
		}
		i = skipSpace(data, ke+1)
		i = skipSpace(data, i+1) // the colon
		switch string(data[ks:ke]) {
		case "filename", "content_type", "checksum_sha256":
			vs, ve, ok := plainString(data, i)
			if !ok {
				return false
			}
			v := str(data, vs, ve)
			switch string(data[ks:ke]) {
			case "filename":
				out.Filename = v
			case "content_type":
				out.ContentType = v
			default:
				out.ChecksumSHA256 = v
			}
			i = ve + 1
		case "size":
			n, end, ok := plainInt(data, i)
			if !ok {
				return false
			}
			out.Size, i = n, end
		case "metadata":
			if data[i] == 'n' {
				return false // null: left to encoding/json
			}
			end := skipValue(data, i)
			out.Metadata = json.RawMessage(data[i:end:end])
			i = end
		default:
			return false
		}
		i = skipSpace(data, i)
		if data[i] == '}' {
			*req = out
			return true
		}
		i = skipSpace(data, i+1) // the comma
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString returns the bounds of the contents of the string at b[i],
// and false if b[i] is no string or the string has an escape (in valid
// JSON a string has no raw control characters).
func plainString(b []byte, i int) (start, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			return 0, 0, false
		case '"':
			return i + 1, j, true
		}
	}
	return 0, 0, false
}

// plainInt reads the number at b[i] when it is an integer of at most 18
// digits (no fraction, no exponent: those, and overflows, are type errors
// for encoding/json), and returns it and where it ends.
func plainInt(b []byte, i int) (int64, int, bool) {
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	start := i
	var n int64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		n = n*10 + int64(b[i]-'0')
		i++
	}
	if i == start || i-start > 18 || i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
		return 0, 0, false
	}
	if neg {
		n = -n
	}
	return n, i, true
}

// skipValue returns where the valid JSON value at b[i] ends.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default: // number, true, false, null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' &&
			b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i
	}
}

// skipString returns the index after the valid JSON string at b[i].
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}
