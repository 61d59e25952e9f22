package upload

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// KeyTemplate renders object keys on the server side. Its placeholders are
// {id}, {ext}, {profile}, {identity}, {year}, {month}, {day} and {hour}; it
// must contain {id}, so that every intent gets a key of its own and no upload
// can overwrite another. The client's filename never becomes part of a key.
type KeyTemplate struct {
	parts []keyPart
}

type keyPart struct {
	literal     string
	placeholder string
}

var keyPlaceholders = map[string]bool{
	"id": true, "ext": true, "profile": true, "identity": true,
	"year": true, "month": true, "day": true, "hour": true,
}

// ParseKeyTemplate checks and compiles a key template.
func ParseKeyTemplate(s string) (*KeyTemplate, error) {
	if s == "" {
		return nil, fmt.Errorf("key template is empty")
	}
	if strings.HasPrefix(s, "/") || strings.Contains(s, "//") || strings.Contains(s, "..") {
		return nil, fmt.Errorf("key template %q: no leading slash, '//' or '..'", s)
	}
	t := &KeyTemplate{}
	hasID := false
	for rest := s; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			open = len(rest)
		}
		if lit := rest[:open]; lit != "" {
			for _, c := range lit {
				if !safeKeyChar(c) && c != '/' {
					return nil, fmt.Errorf("key template %q: character %q is not allowed in keys", s, c)
				}
			}
			t.parts = append(t.parts, keyPart{literal: lit})
		}
		rest = rest[open:]
		if rest == "" {
			break
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("key template %q: unclosed '{'", s)
		}
		name := rest[1:end]
		if !keyPlaceholders[name] {
			return nil, fmt.Errorf("key template %q: unknown placeholder {%s}", s, name)
		}
		hasID = hasID || name == "id"
		t.parts = append(t.parts, keyPart{placeholder: name})
		rest = rest[end+1:]
	}
	if !hasID {
		return nil, fmt.Errorf("key template %q must contain {id}", s)
	}
	return t, nil
}

// KeyValues are what a key is rendered from.
type KeyValues struct {
	ID, Ext, Profile, Identity string
	Time                       time.Time
}

// Render returns the key for v.
func (t *KeyTemplate) Render(v KeyValues) string {
	// One buffer, sized for the usual key, and one string made of it: a
	// key is rendered on every grant.
	b := make([]byte, 0, 96)
	ts := v.Time.UTC()
	for _, p := range t.parts {
		switch p.placeholder {
		case "":
			b = append(b, p.literal...)
		case "id":
			b = append(b, v.ID...)
		case "ext":
			b = append(b, v.Ext...)
		case "profile":
			b = appendKeySafe(b, v.Profile)
		case "identity":
			b = appendKeySafe(b, v.Identity)
		case "year":
			b = appendPadded(b, ts.Year(), 4)
		case "month":
			b = appendPadded(b, int(ts.Month()), 2)
		case "day":
			b = appendPadded(b, ts.Day(), 2)
		case "hour":
			b = appendPadded(b, ts.Hour(), 2)
		}
	}
	return string(b)
}

// appendPadded appends n in decimal, zero-padded to width digits, as
// fmt's %0*d does (a negative year keeps its sign in front).
func appendPadded(b []byte, n, width int) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
		width--
	}
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(n), 10)
	for i := len(d); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

func safeKeyChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

// appendKeySafe appends an arbitrary value as one key segment: letters, digits,
// '-' and '_' survive, anything else (slashes, dots, spaces, control and
// non-ASCII characters) becomes '_', and the result is at most 64 bytes.
func appendKeySafe(b []byte, s string) []byte {
	if s == "" {
		return append(b, '_')
	}
	b0 := len(b)
	for _, c := range s {
		if len(b)-b0 == 64 {
			break
		}
		if safeKeyChar(c) && c != '.' {
			b = append(b, byte(c))
		} else {
			b = append(b, '_')
		}
	}
	return b
}
