package integration

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
)

// PUT mode through the real Caddy binary (the extra config's /put
// profile, method put) and versitygw.

func putTo(t *testing.T, u string, headers map[string]any, body []byte, edit func(*http.Request)) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v.(string))
	}
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestPutGrantThroughCaddy(t *testing.T) {
	img := pngFile(t)
	expect(t, call(t, "POST", extraURL+"/put", map[string]any{"content_type": "image/png"}), 400, "size_required")
	g := call(t, "POST", extraURL+"/put", map[string]any{"content_type": "image/png", "size": len(img)})
	headers, _ := g.Body["headers"].(map[string]any)
	if g.Status != 201 || g.str("method") != "PUT" || g.Body["fields"] != nil || headers["Content-Type"] != "image/png" ||
		headers["X-Amz-Meta-Intent-Id"] != g.str("id") || g.str("staging_key") != "staging/"+g.str("key") {
		t.Fatalf("PUT grant: %d %s", g.Status, g.Raw)
	}
	if st := putTo(t, g.str("url"), headers, append(img, 0), nil); st != 403 {
		t.Fatalf("a longer body: %d, want 403 from the store", st)
	}
	if st := putTo(t, g.str("url"), headers, img, func(r *http.Request) { r.Header.Set("Content-Type", "image/svg+xml") }); st != 403 {
		t.Fatalf("another type: %d, want 403 from the store", st)
	}
	if st := putTo(t, g.str("url"), headers, img, func(r *http.Request) { r.Header.Del("X-Amz-Meta-Intent-Id") }); st != 403 {
		t.Fatalf("no metadata header: %d, want 403 from the store", st)
	}
	if objectExists(t, g.str("staging_key")) {
		t.Fatal("a refused PUT left an object")
	}
	if st := putTo(t, g.str("url"), headers, img, nil); st != 200 {
		t.Fatalf("the exact PUT: %d", st)
	}
	done := call(t, "POST", extraURL+"/put/"+g.str("id")+"/complete", nil)
	if done.Status != 200 || done.str("status") != "completed" || done.str("key") != g.str("key") || !bytes.Equal(objectBytes(t, g.str("key")), img) {
		t.Fatalf("complete: %d %s", done.Status, done.Raw)
	}
	// A replay of the PUT after completion lands in staging only.
	if st := putTo(t, g.str("url"), headers, img, nil); st != 200 || !objectExists(t, g.str("staging_key")) || !bytes.Equal(objectBytes(t, g.str("key")), img) {
		t.Fatalf("replayed PUT: %d", st)
	}

	// Uppy's params route answers the PUT shape; it needs the size.
	q := url.Values{"filename": {"a.png"}, "type": {"image/png"}}
	if r := call(t, "GET", extraURL+"/put/s3/params?"+q.Encode(), nil); r.Status != 400 {
		t.Fatalf("Uppy params without size: %d %s", r.Status, r.Raw)
	}
	q.Set("size", strconv.Itoa(len(img)))
	p := call(t, "GET", extraURL+"/put/s3/params?"+q.Encode(), nil)
	ph, _ := p.Body["headers"].(map[string]any)
	if p.Status != 200 || p.str("method") != "PUT" || ph["Content-Type"] != "image/png" || ph["X-Amz-Meta-Intent-Id"] == nil {
		t.Fatalf("Uppy params: %d %s", p.Status, p.Raw)
	}
	if st := putTo(t, p.str("url"), ph, img, nil); st != 200 {
		t.Fatalf("PUT from Uppy's params: %d", st)
	}
}
