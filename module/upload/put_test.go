package upload

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// PUT mode against versitygw: the store itself refuses a PUT that differs
// from the grant in length, type or metadata header.

// doPut sends body to a PUT grant with its headers, changed by edit, and
// returns the store's status and body.
func doPut(t *testing.T, g *Grant, body []byte, edit func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, g.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range g.Headers {
		req.Header.Set(k, v)
	}
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

func newPutEnv(t *testing.T) *env {
	e := newPromotingEnv(t)
	e.profile.Method = MethodPut
	return e
}

func TestPutGrantSignsEveryHeader(t *testing.T) {
	e := newPutEnv(t)
	ctx := context.Background()
	if _, err := e.svc.Create(ctx, e.profile, "alice", CreateRequest{ContentType: "image/png"}); !errors.Is(err, ErrSizeRequired) {
		t.Fatalf("PUT grant without a size: %v", err)
	}
	if _, err := e.svc.Create(ctx, e.profile, "alice", CreateRequest{ContentType: "image/svg+xml", Size: 10}); !errors.Is(err, ErrTypeNotAllowed) {
		t.Fatalf("a bad type is told before the missing size: %v", err)
	}
	g := e.grant(t, "image/png", int64(len(pngBytes)))
	if g.Method != MethodPut || g.Fields != nil {
		t.Fatalf("grant %+v", g)
	}
	u, err := url.Parse(g.URL)
	if err != nil {
		t.Fatal(err)
	}
	signed := u.Query().Get("X-Amz-SignedHeaders")
	for _, h := range []string{"content-length", "content-type", "host", "x-amz-meta-intent-id"} {
		if !strings.Contains(signed, h) {
			t.Errorf("%s is not signed: %q", h, signed)
		}
	}
	for k := range u.Query() {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-meta-") || strings.HasPrefix(strings.ToLower(k), "x-amz-checksum") ||
			strings.HasPrefix(strings.ToLower(k), "x-amz-sdk-checksum") {
			t.Errorf("%s was hoisted into the query string", k)
		}
	}
	if !strings.HasSuffix(u.Path, "/"+g.Intent.StagingKey) {
		t.Errorf("URL path %q does not name the staging key %q", u.Path, g.Intent.StagingKey)
	}
	if g.Headers["Content-Type"] != "image/png" || g.Headers["X-Amz-Meta-Intent-Id"] != g.Intent.ID || len(g.Headers) != 2 {
		t.Errorf("headers %v", g.Headers)
	}
}

// TestPutGrantEnforcedByStore: each deviation is refused by versitygw
// (403: the signature no longer matches), nothing lands; the exact PUT
// completes and is promoted.
func TestPutGrantEnforcedByStore(t *testing.T) {
	e := newPutEnv(t)
	ctx := context.Background()
	g := e.grant(t, "image/png", int64(len(pngBytes)))
	for name, tc := range map[string]struct {
		body []byte
		edit func(*http.Request)
	}{
		"longer body":          {pngOf("more"), nil},
		"shorter body":         {pngBytes[:len(pngBytes)-1], nil},
		"other type":           {pngBytes, func(r *http.Request) { r.Header.Set("Content-Type", "text/html") }},
		"no metadata header":   {pngBytes, func(r *http.Request) { r.Header.Del("X-Amz-Meta-Intent-Id") }},
		"other metadata value": {pngBytes, func(r *http.Request) { r.Header.Set("X-Amz-Meta-Intent-Id", "01someoneelse000000000000") }},
	} {
		status, body := doPut(t, g, tc.body, tc.edit)
		t.Logf("%s: versitygw answered %d %.120s", name, status, body)
		if status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403 from the store", name, status)
		}
		if !absent(t, e.profile.Objects, g.Intent.StagingKey) {
			t.Fatalf("%s: an object landed", name)
		}
	}
	if status, body := doPut(t, g, pngBytes, nil); status != http.StatusOK {
		t.Fatalf("the exact PUT: %d %s", status, body)
	}
	in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	e.svc.Wait() // the staging object is deleted after the answer
	if err != nil || in.Status != store.StatusCompleted || !bytes.Equal(getObject(t, in.Key), pngBytes) || !absent(t, e.profile.Objects, in.StagingKey) {
		t.Fatalf("complete: %+v %v", in, err)
	}
}

// TestPutVerifyRejects: what the signature cannot see (the bytes' real
// type) is still verified after a PUT, and the object deleted.
func TestPutVerifyRejects(t *testing.T) {
	e := newPutEnv(t)
	html := []byte("<html><script>alert(1)</script></html>")
	g := e.grant(t, "image/png", int64(len(html)))
	if status, body := doPut(t, g, html, nil); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, body)
	}
	in, err := e.svc.Complete(context.Background(), e.profile, "alice", g.Intent.ID, nil)
	if !errors.Is(err, ErrRejected) || in.Reason != string(ReasonContentMismatch) || !absent(t, e.profile.Objects, in.StagingKey) || !absent(t, e.profile.Objects, in.Key) {
		t.Fatalf("complete: %+v %v", in, err)
	}
}
