package bucket

import (
	"encoding/json"
	"sort"
	"strconv"
	"unicode/utf8"
)

// appendPolicy writes the policy document exactly as json.Marshal writes
// map[string]any{"conditions": conds, "expiration": exp} (keys sorted, HTML
// characters escaped), without reflection: it is most of a grant's CPU
// otherwise. Shapes it does not know go through json.Marshal.
func appendPolicy(b []byte, conds []any, exp string) ([]byte, error) {
	b = append(b, `{"conditions":[`...)
	for i, c := range conds {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendValue(b, c); err != nil {
			return nil, err
		}
	}
	b = append(b, `],"expiration":`...)
	b = AppendJSONString(b, exp)
	return append(b, '}'), nil
}

func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return AppendJSONString(b, v), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case map[string]string:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, k)
			b = append(b, ':')
			b = AppendJSONString(b, v[k])
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, x := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, x); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	data, err := json.Marshal(v)
	return append(b, data...), err
}

// AppendJSONString appends s quoted as encoding/json quotes it; strings
// with anything it would escape (quotes, backslashes, control and HTML
// characters, non-ASCII) are left to it. The policy document and the
// handler's grant answer both write their strings with it.
func AppendJSONString(b []byte, s string) []byte {
	// One table lookup a byte: the policy, a long base64 string, is
	// scanned on every grant.
	for i := 0; i < len(s); i++ {
		if jsonEscaped[s[i]] {
			data, _ := json.Marshal(s)
			return append(b, data...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// jsonEscaped marks the bytes encoding/json writes otherwise than as
// themselves (or may: every byte of a multi-byte character).
var jsonEscaped = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf
	}
	return t
}()
