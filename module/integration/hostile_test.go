package integration

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// hostileCase is one hostile request and the answer it must get.
type hostileCase struct {
	name        string
	method, url string
	body        any
	auth        []string
	status      int
	code        string
	uppy        bool // Uppy routes also answer a "message" for the user
}

func (c hostileCase) run(t *testing.T) {
	t.Helper()
	r := call(t, c.method, c.url, c.body, c.auth...)
	if r.Status != c.status || r.code() != c.code {
		t.Fatalf("%s: got %d %q, want %d %q: %s", c.name, r.Status, r.code(), c.status, c.code, r.Raw)
	}
	if c.uppy && r.str("message") == "" {
		t.Fatalf("%s: Uppy answer without a message: %s", c.name, r.Raw)
	}
}

// multipartState is what a hostile request must not change: the intent's
// status and the parts S3 holds for it (as its owner sees them).
func multipartState(t *testing.T, id string, owner []string) string {
	t.Helper()
	st := call(t, "GET", exampleURL+"/files/"+id, nil, owner...)
	if st.Status != 200 {
		t.Fatalf("status of %s: %d %s", id, st.Status, st.Raw)
	}
	ps := call(t, "GET", exampleURL+"/files/"+id+"/parts", nil, owner...)
	return st.str("status") + " " + ps.Raw
}

// TestHostileMultipartJSON: parts beyond the declared layout, parts of
// another intent, forged ETags, and another identity's sign, list,
// complete and fail, through the JSON multipart API. Each gets its stable
// code and changes nothing; the owner then completes normally.
func TestHostileMultipartJSON(t *testing.T) {
	alice, bob := login(t, "alice"), login(t, "bob")
	data := zipData(9 << 20) // two parts of 8 MiB and 1 MiB
	a := call(t, "POST", exampleURL+"/files/multipart", map[string]any{"filename": "a.zip", "content_type": "application/zip", "size": len(data)}, alice...)
	b := call(t, "POST", exampleURL+"/files/multipart", map[string]any{"filename": "b.zip", "content_type": "application/zip", "size": len(data)}, alice...)
	if a.Status != 201 || b.Status != 201 || a.Body["part_count"].(float64) != 2 {
		t.Fatalf("create: %d %s / %d %s", a.Status, a.Raw, b.Status, b.Raw)
	}
	aID, bID := a.str("id"), b.str("id")
	ps := int(a.Body["part_size"].(float64))
	sign := func(id string, n ...int) []string {
		s := call(t, "POST", exampleURL+"/files/"+id+"/parts", map[string]any{"part_numbers": n}, alice...)
		var urls []string
		for _, p := range s.Body["parts"].([]any) {
			urls = append(urls, p.(map[string]any)["url"].(string))
		}
		return urls
	}
	aURLs := sign(aID, 1, 2)
	etag1 := put(t, aURLs[0], data[:ps])
	etag2 := put(t, aURLs[1], data[ps:])
	// A part of B, uploaded as B's part 2 (other bytes: an ETag is the
	// MD5 of the part, so the same bytes would name A's own part).
	bEtag2 := put(t, sign(bID, 2)[0], zipData(1<<20+1))
	before := multipartState(t, aID, alice)

	base := exampleURL + "/files/" + aID
	many := make([]int, 101)
	for i := range many {
		many[i] = i + 1
	}
	for _, c := range []hostileCase{
		// Parts beyond the declared layout.
		{name: "sign part 3 of 2", method: "POST", url: base + "/parts", body: map[string]any{"part_numbers": []int{3}}, auth: alice, status: 400, code: "invalid_request"},
		{name: "sign part 0", method: "POST", url: base + "/parts", body: map[string]any{"part_numbers": []int{0}}, auth: alice, status: 400, code: "invalid_request"},
		{name: "sign part -1", method: "POST", url: base + "/parts", body: map[string]any{"part_numbers": []int{-1}}, auth: alice, status: 400, code: "invalid_request"},
		{name: "sign a part twice", method: "POST", url: base + "/parts", body: map[string]any{"part_numbers": []int{1, 1}}, auth: alice, status: 400, code: "invalid_request"},
		{name: "sign 101 parts", method: "POST", url: base + "/parts", body: map[string]any{"part_numbers": many}, auth: alice, status: 400, code: "invalid_request"},
		{name: "sign no part", method: "POST", url: base + "/parts", body: map[string]any{"part_numbers": []int{}}, auth: alice, status: 400, code: "invalid_request"},
		{name: "sign part 2^32+1", method: "POST", url: base + "/parts", body: `{"part_numbers":[4294967297]}`, auth: alice, status: 400, code: "invalid_request"},
		{name: "complete with part 3 of 2", method: "POST", url: base + "/complete", body: map[string]any{"parts": []map[string]any{{"part_number": 1, "etag": etag1}, {"part_number": 2, "etag": etag2}, {"part_number": 3, "etag": etag2}}}, auth: alice, status: 400, code: "invalid_parts"},
		{name: "complete with part 0", method: "POST", url: base + "/complete", body: map[string]any{"parts": []map[string]any{{"part_number": 0, "etag": etag1}}}, auth: alice, status: 400, code: "invalid_parts"},
		{name: "complete with a part twice", method: "POST", url: base + "/complete", body: map[string]any{"parts": []map[string]any{{"part_number": 1, "etag": etag1}, {"part_number": 1, "etag": etag1}}}, auth: alice, status: 400, code: "invalid_parts"},
		{name: "complete with an empty ETag", method: "POST", url: base + "/complete", body: map[string]any{"parts": []map[string]any{{"part_number": 1, "etag": etag1}, {"part_number": 2, "etag": ""}}}, auth: alice, status: 400, code: "invalid_parts"},
		// Forged ETags, and a part of another intent.
		{name: "complete with a forged ETag", method: "POST", url: base + "/complete", body: map[string]any{"parts": []map[string]any{{"part_number": 1, "etag": etag1}, {"part_number": 2, "etag": `"0123456789abcdef0123456789abcdef"`}}}, auth: alice, status: 400, code: "invalid_parts"},
		{name: "complete with B's part", method: "POST", url: base + "/complete", body: map[string]any{"parts": []map[string]any{{"part_number": 1, "etag": etag1}, {"part_number": 2, "etag": bEtag2}}}, auth: alice, status: 400, code: "invalid_parts"},
		// Another identity.
		{name: "bob signs alice's part", method: "POST", url: base + "/parts", body: map[string]any{"part_numbers": []int{1}}, auth: bob, status: 404, code: "not_found"},
		{name: "bob lists alice's parts", method: "GET", url: base + "/parts", auth: bob, status: 404, code: "not_found"},
		{name: "bob completes alice's upload", method: "POST", url: base + "/complete", body: map[string]any{"parts": []map[string]any{{"part_number": 1, "etag": etag1}, {"part_number": 2, "etag": etag2}}}, auth: bob, status: 404, code: "not_found"},
		{name: "bob fails alice's upload", method: "POST", url: base + "/fail", body: map[string]any{"reason": "cancelled"}, auth: bob, status: 404, code: "not_found"},
		{name: "bob reads alice's upload", method: "GET", url: base, auth: bob, status: 404, code: "not_found"},
	} {
		c.run(t)
		if now := multipartState(t, aID, alice); now != before {
			t.Fatalf("%s changed the upload:\n before %s\n after  %s", c.name, before, now)
		}
	}
	if st := call(t, "GET", exampleURL+"/files/"+bID, nil, alice...); st.str("status") != "pending" {
		t.Fatalf("B changed: %s", st.Raw)
	}
	done := call(t, "POST", base+"/complete", map[string]any{"parts": []map[string]any{{"part_number": 1, "etag": etag1}, {"part_number": 2, "etag": etag2}}}, alice...)
	if done.Status != 200 || done.str("status") != "completed" || done.Body["size"].(float64) != float64(len(data)) {
		t.Fatalf("owner's complete after the attacks: %d %s", done.Status, done.Raw)
	}
}

// TestHostileMultipartOversizePart: a presigned part cannot cap its size,
// so a client may PUT more than it declared; the assembled object is
// checked, rejected and deleted, never completed.
func TestHostileMultipartOversizePart(t *testing.T) {
	alice := login(t, "alice")
	g := call(t, "POST", exampleURL+"/files/multipart", map[string]any{"filename": "s.zip", "content_type": "application/zip", "size": 1 << 20}, alice...)
	if g.Status != 201 || g.Body["part_count"].(float64) != 1 {
		t.Fatalf("create: %d %s", g.Status, g.Raw)
	}
	id := g.str("id")
	s := call(t, "POST", exampleURL+"/files/"+id+"/parts", map[string]any{"part_numbers": []int{1}}, alice...)
	u := s.Body["parts"].([]any)[0].(map[string]any)["url"].(string)
	etag := put(t, u, zipData(3<<20))
	r := call(t, "POST", exampleURL+"/files/"+id+"/complete", map[string]any{"parts": []map[string]any{{"part_number": 1, "etag": etag}}}, alice...)
	if r.Status != 422 || r.code() != "upload_rejected" || r.str("status") != "rejected" {
		t.Fatalf("oversize multipart: %d %s", r.Status, r.Raw)
	}
	if objectExists(t, g.str("key")) {
		t.Fatal("the oversize object was left in the bucket")
	}
}

// TestHostileUppy: the same attacks through the Uppy Companion S3 routes.
func TestHostileUppy(t *testing.T) {
	alice, bob := login(t, "alice"), login(t, "bob")
	base := exampleURL + "/files/s3"
	create := func(auth []string, name string) (string, string) {
		c := call(t, "POST", base+"/multipart", map[string]any{"filename": name, "type": "application/zip"}, auth...)
		if c.Status != 200 || c.str("uploadId") == "" {
			t.Fatalf("create: %d %s", c.Status, c.Raw)
		}
		return c.str("uploadId"), c.str("key")
	}
	aID, aKey := create(alice, "a.zip")
	bID, bKey := create(bob, "b.zip")
	cID, cKey := create(alice, "c.zip")
	q := "?key=" + url.QueryEscape(aKey)
	signPart := func(id, key string, n int, auth []string) string {
		s := call(t, "GET", fmt.Sprintf("%s/multipart/%s/%d?key=%s", base, id, n, url.QueryEscape(key)), nil, auth...)
		if s.Status != 200 {
			t.Fatalf("sign: %d %s", s.Status, s.Raw)
		}
		return s.str("url")
	}
	data := zipData(6 << 20)
	etag1 := put(t, signPart(aID, aKey, 1, alice), data[:5<<20])
	etag2 := put(t, signPart(aID, aKey, 2, alice), data[5<<20:])
	cEtag2 := put(t, signPart(cID, cKey, 2, alice), zipData(1<<20+1)) // other bytes, another ETag
	state := func(id, key string, owner []string) string {
		st := call(t, "GET", exampleURL+"/files/"+id, nil, owner...)
		l := call(t, "GET", base+"/multipart/"+id+"?key="+url.QueryEscape(key), nil, owner...)
		return st.str("status") + " " + l.Raw
	}
	beforeA, beforeB := state(aID, aKey, alice), state(bID, bKey, bob)
	parts := func(ps ...any) map[string]any {
		var out []map[string]any
		for i := 0; i+1 < len(ps); i += 2 {
			out = append(out, map[string]any{"PartNumber": ps[i], "ETag": ps[i+1]})
		}
		return map[string]any{"parts": out}
	}
	mp := base + "/multipart/" + aID
	for _, c := range []hostileCase{
		// Parts beyond the layout (Uppy chooses part sizes; the count is
		// bounded by the profile's maximum size at S3's minimum part).
		{name: "sign part 0", method: "GET", url: mp + "/0" + q, auth: alice, status: 400, code: "invalid_request"},
		{name: "sign part 10001", method: "GET", url: mp + "/10001" + q, auth: alice, status: 400, code: "invalid_request"},
		{name: "sign part -1", method: "GET", url: mp + "/-1" + q, auth: alice, status: 400, code: "invalid_request"},
		{name: "sign part x", method: "GET", url: mp + "/x" + q, auth: alice, status: 400, code: "invalid_request"},
		{name: "sign with another upload's key", method: "GET", url: mp + "/1?key=" + url.QueryEscape(cKey), auth: alice, status: 400, code: "invalid_request"},
		{name: "complete with another upload's key", method: "POST", url: mp + "/complete?key=" + url.QueryEscape(cKey), body: parts(1, etag1, 2, etag2), auth: alice, status: 400, code: "invalid_request"},
		{name: "complete with part 0", method: "POST", url: mp + "/complete" + q, body: parts(0, etag1), auth: alice, status: 400, code: "invalid_parts"},
		{name: "complete with part 10001", method: "POST", url: mp + "/complete" + q, body: parts(1, etag1, 10001, etag2), auth: alice, status: 400, code: "invalid_parts"},
		// Forged ETags, a part of another upload.
		{name: "complete with a forged ETag", method: "POST", url: mp + "/complete" + q, body: parts(1, etag1, 2, `"0123456789abcdef0123456789abcdef"`), auth: alice, status: 400, code: "invalid_parts"},
		{name: "complete with C's part", method: "POST", url: mp + "/complete" + q, body: parts(1, etag1, 2, cEtag2), auth: alice, status: 400, code: "invalid_parts"},
		// Another identity, with the right key.
		{name: "bob lists alice's parts", method: "GET", url: mp + q, auth: bob, status: 404, code: "not_found"},
		{name: "bob signs alice's part", method: "GET", url: mp + "/1" + q, auth: bob, status: 404, code: "not_found"},
		{name: "bob completes alice's upload", method: "POST", url: mp + "/complete" + q, body: parts(1, etag1, 2, etag2), auth: bob, status: 404, code: "not_found"},
		{name: "bob aborts alice's upload", method: "DELETE", url: mp + q, auth: bob, status: 404, code: "not_found"},
		{name: "alice aborts bob's upload", method: "DELETE", url: base + "/multipart/" + bID + "?key=" + url.QueryEscape(bKey), auth: alice, status: 404, code: "not_found"},
		{name: "alice lists bob's parts", method: "GET", url: base + "/multipart/" + bID + "?key=" + url.QueryEscape(bKey), auth: alice, status: 404, code: "not_found"},
	} {
		c.uppy = true
		c.run(t)
		if a, b := state(aID, aKey, alice), state(bID, bKey, bob); a != beforeA || b != beforeB {
			t.Fatalf("%s changed an upload:\n A %s -> %s\n B %s -> %s", c.name, beforeA, a, beforeB, b)
		}
	}
	done := call(t, "POST", mp+"/complete"+q, parts(1, etag1, 2, etag2), alice...)
	// Uppy was handed the staging key; complete answers the final key.
	if done.Status != 200 || done.str("key") != strings.TrimPrefix(aKey, "staging/") || done.str("key") == aKey {
		t.Fatalf("owner's complete after the attacks: %d %s", done.Status, done.Raw)
	}
	if st := call(t, "GET", exampleURL+"/files/"+aID, nil, alice...); st.str("status") != "completed" {
		t.Fatalf("after complete: %s", st.Raw)
	}
}
