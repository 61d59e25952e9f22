package handler

import (
	"encoding/json"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendGrant writes the 201 answer to a grant as encoding/json would
// write grantView, without reflection: it is on the hot path, and the
// policy is a long string that json's escaping scan walks byte by byte.
func appendGrant(b []byte, g grantView) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, g.ID)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, g.Method)
	b = append(b, `,"url":`...)
	b = appendJSONString(b, g.URL)
	b = append(b, `,"fields":{`...)
	keys := make([]string, 0, len(g.Fields))
	for k := range g.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, g.Fields[k])
	}
	b = append(b, `},"key":`...)
	b = appendJSONString(b, g.Key)
	b = append(b, `,"bucket":`...)
	b = appendJSONString(b, g.Bucket)
	b = append(b, `,"expires_at":"`...)
	b = g.ExpiresAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","max_size":`...)
	b = strconv.AppendInt(b, g.MaxSize, 10)
	return append(b, "}\n"...)
}

// appendJSONString quotes s as encoding/json does, leaving strings that
// need escaping to it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			data, _ := json.Marshal(s)
			return append(b, data...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
