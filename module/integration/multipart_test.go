package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func zipData(n int) []byte {
	b := bytes.Repeat([]byte("z"), n)
	copy(b, "PK\x03\x04\x14\x00")
	return b
}

func put(t testing.TB, u string, data []byte) string {
	t.Helper()
	req, _ := http.NewRequest("PUT", u, bytes.NewReader(data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT part: %d", resp.StatusCode)
	}
	return resp.Header.Get("ETag")
}

// TestMultipartJSONAPI walks the multipart routes of Caddyfile.example's
// files profile through forward_auth.
func TestMultipartJSONAPI(t *testing.T) {
	alice := login(t, "alice")
	data := zipData(9 << 20)
	g := call(t, "POST", exampleURL+"/files/multipart", map[string]any{"filename": "big.zip", "content_type": "application/zip", "size": len(data)}, alice...)
	if g.Status != 201 || g.Body["part_count"].(float64) != 2 || g.str("upload_id") == "" || !strings.HasPrefix(g.str("key"), "files/") {
		t.Fatalf("create: %d %s", g.Status, g.Raw)
	}
	id := g.str("id")
	ps := int(g.Body["part_size"].(float64))
	signed := call(t, "POST", exampleURL+"/files/"+id+"/parts", map[string]any{"part_numbers": []int{1, 2}}, alice...)
	urls, _ := signed.Body["parts"].([]any)
	if signed.Status != 200 || len(urls) != 2 {
		t.Fatalf("sign: %d %s", signed.Status, signed.Raw)
	}
	var parts []map[string]any
	for i, p := range urls {
		end := min((i+1)*ps, len(data))
		etag := put(t, p.(map[string]any)["url"].(string), data[i*ps:end])
		parts = append(parts, map[string]any{"part_number": i + 1, "etag": etag})
	}
	if l := call(t, "GET", exampleURL+"/files/"+id+"/parts", nil, alice...); l.Status != 200 || len(l.Body["parts"].([]any)) != 2 {
		t.Fatalf("list: %d %s", l.Status, l.Raw)
	}
	expect(t, call(t, "POST", exampleURL+"/files/"+id+"/parts", map[string]any{"part_numbers": []int{3}}, alice...), 400, "invalid_request")
	done := call(t, "POST", exampleURL+"/files/"+id+"/complete", map[string]any{"parts": parts}, alice...)
	if done.Status != 200 || done.str("status") != "completed" || done.Body["size"].(float64) != float64(len(data)) {
		t.Fatalf("complete: %d %s", done.Status, done.Raw)
	}
	if !objectExists(t, g.str("key")) {
		t.Fatal("assembled object missing")
	}
	bob := login(t, "bob")
	expect(t, call(t, "GET", exampleURL+"/files/"+id+"/parts", nil, bob...), 404, "not_found")
}

// TestUppyRoutes makes the calls @uppy/aws-s3 makes against a Companion
// endpoint, for a simple and a multipart upload.
func TestUppyRoutes(t *testing.T) {
	alice := login(t, "alice")
	base := exampleURL + "/files/s3"
	p := call(t, "GET", base+"/params?filename=doc.pdf&type=application%2Fpdf&metadata%5Bname%5D=doc.pdf", nil, alice...)
	if p.Status != 200 || p.str("method") != "POST" || p.fields()["key"] == "" || p.Body["expires"].(float64) < 1 {
		t.Fatalf("params: %d %s", p.Status, p.Raw)
	}
	if status, body := uploadForm(t, p, "application/pdf", []byte("%PDF-1.7\n%fake but signed\n")); status != 201 {
		t.Fatalf("simple upload: %d %s", status, body)
	}
	bad := call(t, "GET", base+"/params?filename=x.svg&type=image%2Fsvg%2Bxml", nil, alice...)
	if bad.Status != 422 || bad.str("message") == "" {
		t.Fatalf("svg through Uppy: %d %s", bad.Status, bad.Raw)
	}

	c := call(t, "POST", base+"/multipart", map[string]any{"filename": "big.zip", "type": "application/zip", "metadata": map[string]any{"name": "big.zip"}}, alice...)
	key, uid := c.str("key"), c.str("uploadId")
	if c.Status != 200 || key == "" || uid == "" || c.str("bucket") != "uploads" {
		t.Fatalf("create multipart: %d %s", c.Status, c.Raw)
	}
	q := "?key=" + url.QueryEscape(key)
	data := zipData(7 << 20)
	var parts []map[string]any
	for n, chunk := range [][]byte{data[:5<<20], data[5<<20:]} {
		s := call(t, "GET", fmt.Sprintf("%s/multipart/%s/%d%s", base, uid, n+1, q), nil, alice...)
		if s.Status != 200 || s.str("url") == "" {
			t.Fatalf("sign part: %d %s", s.Status, s.Raw)
		}
		parts = append(parts, map[string]any{"PartNumber": n + 1, "ETag": put(t, s.str("url"), chunk)})
	}
	l := call(t, "GET", base+"/multipart/"+uid+q, nil, alice...)
	if l.Status != 200 || !strings.Contains(l.Raw, `"PartNumber":2`) {
		t.Fatalf("list parts: %d %s", l.Status, l.Raw)
	}
	if w := call(t, "GET", base+"/multipart/"+uid+"?key=files/other", nil, alice...); w.Status != 400 {
		t.Fatalf("wrong key accepted: %d", w.Status)
	}
	done := call(t, "POST", base+"/multipart/"+uid+"/complete"+q, map[string]any{"parts": parts}, alice...)
	// Uppy was handed the staging key; complete answers the final key.
	final := strings.TrimPrefix(key, "staging/")
	if done.Status != 200 || final == key || done.str("key") != final || !strings.HasSuffix(done.str("location"), final) || !objectExists(t, final) || objectExists(t, key) {
		t.Fatalf("complete: %d %s", done.Status, done.Raw)
	}
	st := call(t, "GET", exampleURL+"/files/"+uid, nil, alice...)
	if st.str("status") != "completed" {
		t.Fatalf("status after Uppy complete: %s", st.Raw)
	}
	// Abort of another multipart upload.
	c2 := call(t, "POST", base+"/multipart", map[string]any{"filename": "x.zip", "type": "application/zip"}, alice...)
	if a := call(t, "DELETE", base+"/multipart/"+c2.str("uploadId")+"?key="+url.QueryEscape(c2.str("key")), nil, alice...); a.Status != 200 {
		t.Fatalf("abort: %d %s", a.Status, a.Raw)
	}
	if st := call(t, "GET", exampleURL+"/files/"+c2.str("uploadId"), nil, alice...); st.str("status") != "failed" {
		t.Fatalf("after abort: %s", st.Raw)
	}
}
