package bucket

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzPolicyJSON: the hand-written policy encoder must write exactly the
// bytes encoding/json writes for the same document (S3 checks the
// signature over these bytes, and a browser or S3 decodes them), for any
// strings the policy's conditions carry: keys from templates, content
// types, metadata, dispositions.
func FuzzPolicyJSON(f *testing.F) {
	f.Add("uploads", "images/2026/01/01/abc.png", "image/png", "x-amz-meta-album", "holidays", "2026-01-01T00:00:00Z", int64(1), int64(10<<20))
	f.Add("b", "k", "text/plain; charset=utf-8", "x-amz-meta-name", "<script>&\"\\'\u2028\u2029", "", int64(0), int64(-1))
	f.Add("b\x00", "k/\xff\xfe", "a/b", "k\u00e9", "\x7f\x1f\t\n\r", "exp\"", int64(-9223372036854775808), int64(9223372036854775807))
	f.Add("", "", "", "", "", "", int64(0), int64(0))
	f.Fuzz(func(t *testing.T, bucket, key, ct, metaName, metaValue, exp string, lo, hi int64) {
		conds := []any{
			map[string]string{"bucket": bucket},
			[]any{"eq", "$key", key},
			[]any{"content-length-range", lo, hi},
			[]any{"eq", "$Content-Type", ct},
			map[string]string{metaName: metaValue, "x-amz-algorithm": "AWS4-HMAC-SHA256", key: bucket},
			[]any{"starts-with", "$" + metaName, metaValue, int(lo % 1000)},
		}
		got, err := appendPolicy(nil, conds, exp)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(map[string]any{"conditions": conds, "expiration": exp})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("policy differs from encoding/json:\n got  %s\n want %s", got, want)
		}
		if !json.Valid(got) {
			t.Fatalf("policy is not valid JSON: %s", got)
		}
	})
}
