package handler

import (
	"slices"
	"strconv"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
)

// appendGrant writes the 201 answer to a grant as encoding/json would
// write grantView, without reflection: it is on the hot path, and the
// policy is a long string that json's escaping scan walks byte by byte.
func appendGrant(b []byte, g grantView) []byte {
	b = append(b, `{"id":`...)
	b = bucket.AppendJSONString(b, g.ID)
	b = append(b, `,"method":`...)
	b = bucket.AppendJSONString(b, g.Method)
	b = append(b, `,"url":`...)
	b = bucket.AppendJSONString(b, g.URL)
	if len(g.Fields) > 0 {
		b = appendStringMap(append(b, `,"fields":`...), g.Fields)
	}
	b = append(b, `,"key":`...)
	b = bucket.AppendJSONString(b, g.Key)
	b = append(b, `,"bucket":`...)
	b = bucket.AppendJSONString(b, g.Bucket)
	b = append(b, `,"expires_at":"`...)
	b = g.ExpiresAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","max_size":`...)
	b = strconv.AppendInt(b, g.MaxSize, 10)
	if len(g.Headers) > 0 {
		b = appendStringMap(append(b, `,"headers":`...), g.Headers)
	}
	if g.StagingKey != "" {
		b = append(b, `,"staging_key":`...)
		b = bucket.AppendJSONString(b, g.StagingKey)
	}
	return append(b, "}\n"...)
}

// appendStringMap writes m as a JSON object with sorted keys.
func appendStringMap(b []byte, m map[string]string) []byte {
	var buf [16]string // a grant's fields fit: no allocation
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = bucket.AppendJSONString(b, k)
		b = append(b, ':')
		b = bucket.AppendJSONString(b, m[k])
	}
	return append(b, '}')
}
