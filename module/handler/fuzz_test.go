package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

// FuzzDecodeBody: the request decoder reads untrusted bodies. It must
// not panic, must fail only with a stable code that has a status, must
// accept only valid JSON, and in strict mode must refuse what the
// lenient decoder would silently drop (unknown fields).
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		``, ` `, `{}`, `null`, `[]`, `{"filename":"a.png","content_type":"image/png","size":12,"metadata":{"a":1}}`,
		`{"filename":"a.png"} {}`, `{"filename":"a.png"}x`, `{"size":"12"}`, `{"size":1e400}`, `{"nope":1}`,
		`{"filename":"\ud800"}`, "{\"filename\":\"\xff\"}", `{"metadata":[1,2]}`, `{"metadata":"x"}`, `{`,
		`{"part_numbers":[1,2,4294967297]}`, `{"parts":[{"part_number":1,"etag":"\"x\""}]}`, `{"reason":"cancelled"}`,
		`{"filename":"a","filename":"b"}`, `{"FileName":"case"}`,
	} {
		f.Add([]byte(s), "application/json", true)
	}
	f.Add([]byte(`{}`), "text/plain", true)
	f.Add([]byte(`{}`), "application/json; charset=utf-8", false)
	f.Add([]byte(`{"extra":1}`), "application/json", false)
	f.Fuzz(func(t *testing.T, body []byte, contentType string, strict bool) {
		limit := int64(1 << 10)
		decode := func(v any) error {
			r := httptest.NewRequest("POST", "/uploads", bytes.NewReader(body))
			r.Header.Set("Content-Type", contentType)
			return decodeBody(r, limit, v, strict)
		}
		for _, v := range []any{&upload.CreateRequest{}, &struct {
			Parts []partRef `json:"parts"`
		}{}, &struct {
			Numbers []int `json:"part_numbers"`
		}{}, nil} {
			err := decode(v)
			if err == nil {
				if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && !json.Valid(trimmed) {
					t.Fatalf("accepted invalid JSON %q", body)
				}
				if int64(len(body)) > limit {
					t.Fatalf("accepted a body over the limit (%d bytes)", len(body))
				}
				continue
			}
			var ue *upload.Error
			if !errors.As(err, &ue) {
				t.Fatalf("error without a code: %v", err)
			}
			if _, ok := statusOf[ue.Code]; !ok {
				t.Fatalf("code %q has no status", ue.Code)
			}
		}
	})
}

// FuzzGrantJSON: the hand-written grant encoder writes exactly what
// encoding/json's Encoder writes for the same grantView.
func FuzzGrantJSON(f *testing.F) {
	f.Add("01m8rm4z8vcjfpaz2p1de8rsw7", "POST", "http://127.0.0.1:7070/uploads", "policy", "eyJjb25kaXRpb25zIjpbXX0=", "x-amz-meta-a", "<b>&\"\\", "images/a.png", "uploads", int64(1796122770123456789), int64(10<<20))
	f.Add("", "", "", "", "", "", "", "", "", int64(0), int64(-1))
	f.Add("\xff", "\u2028\u2029", "\x00\x1f\x7f", "é", "\ud7ff", "k\"", "v\\", "key\t", "b\n", int64(-62135596800000000), int64(-9223372036854775808))
	f.Fuzz(func(t *testing.T, id, method, url, k1, v1, k2, v2, key, bucket string, unixNano, maxSize int64) {
		g := grantView{ID: id, Method: method, URL: url, Fields: map[string]string{k1: v1, k2: v2, "key": key},
			Key: key, Bucket: bucket, ExpiresAt: time.Unix(0, unixNano).UTC(), MaxSize: maxSize}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(g); err != nil {
			t.Fatal(err)
		}
		if got := appendGrant(nil, g); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("grant differs from encoding/json:\n got  %s\n want %s", got, want.Bytes())
		}
	})
}

// FuzzUnmarshalCaddyfile: any Caddyfile text for the handler gives a
// handler or an error, never a panic.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, s := range []string{
		"direct_upload {\n profile avatars\n base_path /avatars\n bucket b\n region r\n endpoint http://127.0.0.1:7070\n path_style\n access_key_id {env.AK}\n secret_access_key {env.SK}\n key avatars/{identity}/{id}{ext}\n allowed_types image/png image/jpeg\n max_size 2MiB\n expires 90s\n identity {http.request.header.X-User-Id}\n max_metadata 1KiB\n content_disposition attachment\n}",
		"direct_upload {\n webhook http://127.0.0.1:9/h {\n secret whsec_x\n timeout 3s\n retry 0s 1s\n wait 2s\n }\n}",
		"direct_upload extra-arg", "direct_upload {\n unknown_thing 1\n}", "direct_upload {\n bucket\n}", "direct_upload {\n max_size lots\n}",
		"direct_upload {\n max_size -1\n}", "direct_upload {\n max_size 99999999999999999999GiB\n}", "direct_upload {\n expires soon\n}",
		"direct_upload {\n webhook {\n}\n}", "direct_upload {\n webhook\n}", "direct_upload {\n retry\n}", "direct_upload {", "direct_upload }", "",
		"direct_upload {\n on_expiry delete\n}", "direct_upload {\n promote\n}", "direct_upload {\n {\n}\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		var h Handler
		_ = h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src))
	})
}

// FuzzDecodeCreateFast: the hand-written grant request decoder decodes
// exactly what encoding/json decodes (strict and lenient), and declines
// everything else, leaving the request untouched.
func FuzzDecodeCreateFast(f *testing.F) {
	for _, s := range []string{
		benchBody, `{}`, ` { } `, `{"filename":"a.png","content_type":"image/png","size":12,"metadata":{"a":1}}`,
		`{"size":0}`, `{"size":-0}`, `{"size":-12}`, `{"size":123456789012345678}`, `{"size":1234567890123456789}`,
		`{"size":99999999999999999999}`, `{"size":1.0}`, `{"size":1e3}`, `{"size":"1"}`, `{"size":null}`,
		`{"filename":"a","filename":"b"}`, `{"metadata":{"a":1},"metadata":[2]}`, `{"FileName":"case"}`,
		`{"filename":"a\"b"}`, `{"filename":"\u00e9"}`, `{"filename":"é ☃ \u2028"}`, `{"filename":null}`,
		`{"metadata":null}`, `{"metadata":"}"}`, `{"metadata":{"k":"]}\"{"}}`, `{"metadata":[{"a":[1,{"b":"c"}]},"x\\"]}`,
		`{"metadata":true}`, `{"metadata":-1.5e3 }`, `{"metadata" : { } , "size" : 7 }`, "{\n\t\"checksum_sha256\":\"x\"\r\n}",
		`{"extra":1}`, `{"filename":"a"} {}`, `{"filename":"a"`, `[]`, `null`, `"x"`, `{"filename":1}`, `{"content_type":["x"]}`,
		`{"filen\u0061me":"a"}`, `{"":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			return // decodeBody refuses invalid UTF-8 before any decoding
		}
		var fast upload.CreateRequest
		if !decodeCreateFast(body, &fast) {
			if !reflect.DeepEqual(fast, upload.CreateRequest{}) {
				t.Fatalf("declined %q but changed the request: %+v", body, fast)
			}
			return
		}
		for _, strict := range []bool{true, false} {
			var want upload.CreateRequest
			dec := json.NewDecoder(bytes.NewReader(body))
			if strict {
				dec.DisallowUnknownFields()
			}
			if err := dec.Decode(&want); err != nil {
				t.Fatalf("decoded %q, which encoding/json refuses (strict %v): %v", body, strict, err)
			}
			if _, err := dec.Token(); err != io.EOF {
				t.Fatalf("decoded %q, which has data after the value", body)
			}
			if !reflect.DeepEqual(fast, want) {
				t.Fatalf("decoded %q differently:\n got  %+v\n want %+v", body, fast, want)
			}
		}
	})
}

// FuzzReadAtMost: reading a body with readAtMost gives what
// io.ReadAll(http.MaxBytesReader(...)) gives, whatever length the request
// declares (a client may declare a wrong one) and however the reads split.
func FuzzReadAtMost(f *testing.F) {
	f.Add([]byte(benchBody), int64(1024), int64(len(benchBody)), uint8(0))
	f.Add([]byte("0123456789"), int64(10), int64(10), uint8(3))
	f.Add([]byte("0123456789"), int64(9), int64(-1), uint8(1))
	f.Add([]byte("0123456789"), int64(10), int64(4), uint8(0))
	f.Add([]byte(""), int64(0), int64(0), uint8(0))
	f.Fuzz(func(t *testing.T, body []byte, limit, length int64, chunk uint8) {
		if limit < 0 || limit > 1<<16 {
			return
		}
		reader := func() io.Reader {
			if chunk == 0 {
				return bytes.NewReader(body)
			}
			return iotest.OneByteReader(bytes.NewReader(body))
		}
		want, wantErr := io.ReadAll(http.MaxBytesReader(nil, io.NopCloser(reader()), limit))
		got, gotErr := readAtMost(reader(), limit, length)
		var mbe *http.MaxBytesError
		if (wantErr != nil) != (gotErr != nil) || wantErr != nil && !errors.As(gotErr, &mbe) {
			t.Fatalf("error %v, want %v", gotErr, wantErr)
		}
		if wantErr == nil && !bytes.Equal(got, want) {
			t.Fatalf("read %q, want %q", got, want)
		}
	})
}
