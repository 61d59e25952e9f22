package integration

import (
	"strings"
	"testing"
	"time"
)

func waitPast(t testing.TB, rfc3339 string) {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, rfc3339)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(ts) + 1500*time.Millisecond)
}

// TestBadInput: every malformed request gets a stable code and the right
// status, and creates nothing.
func TestBadInput(t *testing.T) {
	u := []string{"X-Test-User", "dave"}
	base := extraURL + "/small"
	big := `{"content_type":"text/plain","filename":"` + strings.Repeat("a", 10000) + `"}`
	cases := []struct {
		name, method, path, body, ctype string
		status                          int
		code                            string
	}{
		{"invalid json", "POST", "", `{"content_type":`, "application/json", 400, "invalid_json"},
		{"trailing data", "POST", "", `{"content_type":"text/plain"} {}`, "application/json", 400, "invalid_json"},
		{"wrong field type", "POST", "", `{"content_type":"text/plain","size":"12"}`, "application/json", 400, "invalid_json"},
		{"unknown field", "POST", "", `{"content_type":"text/plain","key":"x"}`, "application/json", 400, "unknown_field"},
		{"not json", "POST", "", `content_type=text/plain`, "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		{"body too large", "POST", "", big, "application/json", 413, "body_too_large"},
		{"empty body", "POST", "", ``, "application/json", 400, "invalid_request"},
		{"type not allowed", "POST", "", `{"content_type":"image/jpeg"}`, "application/json", 422, "type_not_allowed"},
		{"svg refused", "POST", "", `{"content_type":"image/svg+xml"}`, "application/json", 422, "type_not_allowed"},
		{"html refused", "POST", "", `{"content_type":"text/html"}`, "application/json", 422, "type_not_allowed"},
		{"declared too large", "POST", "", `{"content_type":"text/plain","size":1025}`, "application/json", 422, "too_large"},
		{"negative size", "POST", "", `{"content_type":"text/plain","size":-5}`, "application/json", 400, "invalid_request"},
		{"metadata not object", "POST", "", `{"content_type":"text/plain","metadata":[1]}`, "application/json", 400, "invalid_metadata"},
		{"metadata too large", "POST", "", `{"content_type":"text/plain","metadata":{"k":"` + strings.Repeat("v", 100) + `"}}`, "application/json", 422, "metadata_too_large"},
		{"filename NUL", "POST", "", `{"content_type":"text/plain","filename":"a\u0000.txt"}`, "application/json", 400, "invalid_filename"},
		{"filename CRLF", "POST", "", `{"content_type":"text/plain","filename":"a\r\nX-Evil: 1"}`, "application/json", 400, "invalid_filename"},
		{"filename bidi", "POST", "", `{"content_type":"text/plain","filename":"txt.\u202eexe"}`, "application/json", 400, "invalid_filename"},
		{"GET on collection", "GET", "", ``, "", 405, "method_not_allowed"},
		{"POST on intent", "POST", "/01m8h0g1saxzbz711pavtr43xf", ``, "", 405, "method_not_allowed"},
		{"unknown action", "POST", "/01m8h0g1saxzbz711pavtr43xf/delete", ``, "", 404, "not_found"},
		{"deep path", "GET", "/a/b/c", ``, "", 404, "not_found"},
		{"multipart is no id", "POST", "/multipart/complete", ``, "", 404, "not_found"},
		{"multipart parts is no route", "GET", "/multipart/parts", ``, "", 404, "not_found"},
		{"malformed id", "GET", "/NOT-AN-ID%00", ``, "", 404, "not_found"},
		{"unknown id", "POST", "/01m8h0g1saxzbz711pavtr43xf/complete", ``, "", 404, "not_found"},
		{"complete with body fields", "POST", "/01m8h0g1saxzbz711pavtr43xf/complete", `{"status":"completed"}`, "application/json", 400, "unknown_field"},
		{"fail reason too long", "POST", "/01m8h0g1saxzbz711pavtr43xf/fail", `{"reason":"` + strings.Repeat("r", 5000) + `"}`, "application/json", 413, "body_too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			headers := append([]string{}, u...)
			if tc.body != "" {
				body = tc.body
			}
			if tc.ctype != "" {
				headers = append(headers, "Content-Type", tc.ctype)
			}
			r := call(t, tc.method, base+tc.path, body, headers...)
			expect(t, r, tc.status, tc.code)
			if r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("error answered as %q", r.Header.Get("Content-Type"))
			}
		})
	}
}
