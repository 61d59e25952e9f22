package upload

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"strings"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
)

// FuzzKeyTemplate: any template text either fails to parse or renders,
// for any identity and profile (untrusted: identity comes from a request
// header), a key made only of safe characters and '/', that names the
// intent's id, has no empty segment and no '..' segment, and differs for
// another id: no client value can steer an object onto another's key.
func FuzzKeyTemplate(f *testing.F) {
	for _, s := range []string{
		"{profile}/{identity}/{year}/{month}/{day}/{hour}/{id}{ext}", "images/{year}/{month}/{day}/{id}{ext}",
		"{id}", "a.{ext}/{id}", "{identity}{identity}/{id}", "", "/{id}", "a//{id}", "../{id}", "{id", "{}",
		"{id}{filename}", "a b/{id}", "{id}?x", "\xff{id}", "{{id}}", "{id}}", "x/{id}/", "./{id}",
	} {
		f.Add(s, "../../etc/pass wd\u202e", "avatars", "image/png", int64(1700000000))
	}
	f.Add("{identity}/{id}", "", "", "", int64(-62135596800))
	f.Add("{identity}/{id}", strings.Repeat("é", 100), "p\x00", "application/x-unknown", int64(253402300799))
	f.Fuzz(func(t *testing.T, tmpl, identity, profile, contentType string, unix int64) {
		kt, err := ParseKeyTemplate(tmpl)
		if err != nil {
			if kt != nil {
				t.Fatalf("error with a template: %v", err)
			}
			return
		}
		ts := time.Unix(unix%(1<<35), 0)
		v := KeyValues{ID: NewID(), Ext: sniff.TypeOf(contentType).Ext, Profile: profile, Identity: identity, Time: ts}
		key := kt.Render(v)
		if !strings.Contains(key, v.ID) {
			t.Fatalf("key %q does not name the id %q", key, v.ID)
		}
		if strings.HasPrefix(key, "/") || strings.Contains(key, "//") {
			t.Fatalf("key %q has an empty segment", key)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == ".." {
				t.Fatalf("key %q has a '..' segment", key)
			}
		}
		for _, c := range key {
			if !safeKeyChar(c) && c != '/' {
				t.Fatalf("key %q has %q from a client value (identity %q, profile %q, type %q)", key, c, identity, profile, contentType)
			}
		}
		v2 := v
		v2.ID = NewID()
		for v2.ID == v.ID {
			v2.ID = NewID()
		}
		if kt.Render(v2) == key {
			t.Fatalf("two ids render the same key %q", key)
		}
	})
}

// FuzzPlainMediaType: a content type taken without mime.ParseMediaType
// is exactly what ParseMediaType would have returned for it.
func FuzzPlainMediaType(f *testing.F) {
	for _, s := range []string{"image/png", "IMAGE/PNG", "image/png; q=1", "image/", "/png", "image//png", "a/b/c",
		"image/svg+xml", "application/vnd.ms-excel", " image/png", "image/png ", "x/y!#$%&'*+-.^_`|~", "image/p(ng"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !plainMediaType(s) {
			return
		}
		mt, params, err := mime.ParseMediaType(s)
		if err != nil || mt != s || len(params) != 0 {
			t.Fatalf("plainMediaType(%q) but ParseMediaType gives %q %v %v", s, mt, params, err)
		}
	})
}

// FuzzCleanMetadata: metadata taken as it came, when it is compact
// already, is exactly what json.Compact gives, and the errors are the same.
func FuzzCleanMetadata(f *testing.F) {
	for _, s := range []string{`{"album":"holidays"}`, `{"a": 1}`, `{"a":"x y"}`, `{"a":"\" "}`, `{"a":"\\"}`, `{"a":"\\" }`,
		`{"a":[1,2,{"b":null}]}`, "{\"a\":\"\t\"}", `{"a":1`, `{"a":1}}`, `{}`, `{"<&>":"\u2028"}`, `{"a":"\\\" ,"}`} {
		f.Add([]byte(s), 64)
	}
	f.Fuzz(func(t *testing.T, raw []byte, limit int) {
		if len(raw) == 0 || raw[0] != '{' || string(raw) == "null" {
			return // answered before either path
		}
		got, gotErr := cleanMetadata(raw, limit)
		var buf bytes.Buffer
		var want []byte
		var wantErr error
		if err := json.Compact(&buf, raw); err != nil {
			wantErr = ErrInvalidMetadata
		} else if buf.Len() > limit {
			wantErr = ErrMetadataTooLarge
		} else {
			want = buf.Bytes()
		}
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && !errors.Is(gotErr, wantErr) {
			t.Fatalf("cleanMetadata(%q) error %v, want %v", raw, gotErr, wantErr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("cleanMetadata(%q) = %q, want %q", raw, got, want)
		}
	})
}
