package handler

import (
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/app"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

// routeHandler is a handler whose app has not started: a request that
// gets through routing (and identity) is answered 503 store_unavailable,
// which tells it apart from 404, 405 and the next handler.
func routeHandler(base, identity string) *Handler {
	return &Handler{BasePath: base, Identity: identity, app: new(app.App), logger: zap.NewNop()}
}

// serve runs one request; passed says whether it went to the next handler.
func serve(h *Handler, method, path string) (rec *httptest.ResponseRecorder, passed bool) {
	rec = httptest.NewRecorder()
	r := httptest.NewRequest(method, path, nil)
	next := caddyHandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		passed = true
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
	if err := h.ServeHTTP(rec, r, next); err != nil {
		panic(err)
	}
	return rec, passed
}

type caddyHandlerFunc func(http.ResponseWriter, *http.Request) error

func (f caddyHandlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

func errCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	return body.Error.Code
}

// TestRouting: every route with its methods, under three base paths
// (including "/"), and what is not a route: 404, 405 with Allow, or the
// next handler for paths outside the base.
func TestRouting(t *testing.T) {
	const id = "upl_0123456789abcdef"
	type row struct {
		method, path string
		want         int    // 0: passed on to the next handler
		code, allow  string // expected error code and Allow header
	}
	routed := func(m, p string) row { return row{m, p, 503, "store_unavailable", ""} }
	rows := func(base string) []row {
		b := strings.TrimSuffix(base, "/")
		return []row{
			routed("POST", b+"/"),
			routed("POST", b+"/multipart"),
			routed("GET", b+"/"+id),
			routed("POST", b+"/"+id+"/complete"),
			routed("POST", b+"/"+id+"/fail"),
			routed("GET", b+"/"+id+"/parts"),
			routed("POST", b+"/"+id+"/parts"),
			routed("GET", b+"/s3/params"),
			routed("POST", b+"/s3/multipart"),
			routed("GET", b+"/s3/multipart/"+id),
			routed("DELETE", b+"/s3/multipart/"+id),
			routed("GET", b+"/s3/multipart/"+id+"/3"),
			routed("POST", b+"/s3/multipart/"+id+"/complete"),
			{"GET", b + "/direct-upload.js", 200, "", ""},
			{"HEAD", b + "/direct-upload.d.ts", 200, "", ""},
			{"GET", b + "/", 405, "method_not_allowed", "POST"},
			{"PUT", b + "/multipart", 405, "method_not_allowed", "POST"},
			{"POST", b + "/" + id, 405, "method_not_allowed", "GET"},
			{"DELETE", b + "/" + id, 405, "method_not_allowed", "GET"},
			{"GET", b + "/" + id + "/complete", 405, "method_not_allowed", "POST"},
			{"GET", b + "/" + id + "/fail", 405, "method_not_allowed", "POST"},
			{"PUT", b + "/" + id + "/parts", 405, "method_not_allowed", "GET, POST"},
			{"POST", b + "/s3/params", 405, "method_not_allowed", "GET"},
			{"GET", b + "/s3/multipart", 405, "method_not_allowed", "POST"},
			{"PUT", b + "/s3/multipart/" + id, 405, "method_not_allowed", "GET"},
			{"GET", b + "/" + id + "/other", 404, "not_found", ""},
			{"GET", b + "/a/b/c", 404, "not_found", ""},
			{"GET", b + "/s3/nothing", 404, "not_found", ""},
			{"GET", b + "/s3", 404, "not_found", ""},
		}
	}
	cases := map[string][]row{
		"/uploads": append(rows("/uploads"),
			routed("POST", "/uploads"),
			row{"GET", "/", 0, "", ""},
			row{"POST", "/uploadsx", 0, "", ""},
			row{"POST", "/upload", 0, "", ""},
			row{"GET", "/other/uploads", 0, "", ""},
		),
		"/": append(rows("/"),
			routed("POST", "/"),
		),
		"/api/v1/uploads": append(rows("/api/v1/uploads"),
			routed("POST", "/api/v1/uploads"),
			row{"POST", "/api/v1", 0, "", ""},
			row{"POST", "/api/v1/uploadsfoo", 0, "", ""},
		),
	}
	for base, rows := range cases {
		h := routeHandler(base, "")
		for _, c := range rows {
			rec, passed := serve(h, c.method, c.path)
			name := base + ": " + c.method + " " + c.path
			switch {
			case c.want == 0:
				if !passed {
					t.Errorf("%s: answered %d, want passed on", name, rec.Code)
				}
				continue
			case passed:
				t.Errorf("%s: passed on, want %d", name, c.want)
				continue
			}
			if rec.Code != c.want {
				t.Errorf("%s: %d %s, want %d", name, rec.Code, rec.Body, c.want)
			}
			if c.code != "" && errCode(t, rec) != c.code {
				t.Errorf("%s: code %q, want %q", name, errCode(t, rec), c.code)
			}
			if got := rec.Header().Get("Allow"); got != c.allow {
				t.Errorf("%s: Allow %q, want %q", name, got, c.allow)
			}
		}
	}
	// With an identity configured, a routed request without one is 401.
	rec, _ := serve(routeHandler("/", "{http.request.header.X-User}"), "POST", "/")
	if rec.Code != 401 || errCode(t, rec) != "unauthenticated" {
		t.Errorf("no identity: %d %s", rec.Code, rec.Body)
	}
}

// TestBasePathRootProvisioned: "/" survives Provision's normalisation and
// still routes every API path (it used to route only POST /).
func TestBasePathRootProvisioned(t *testing.T) {
	h := routeHandler("/", "")
	h.BasePath = "/" + strings.Trim(h.BasePath, "/") // as Provision does
	for _, p := range []string{"/upl_x", "/upl_x/complete", "/s3/params", "/direct-upload.js"} {
		method := "GET"
		if strings.HasSuffix(p, "complete") {
			method = "POST"
		}
		if rec, passed := serve(h, method, p); passed || rec.Code == 404 {
			t.Errorf("base_path /: %s %s not routed (%d, passed=%v)", method, p, rec.Code, passed)
		}
	}
}

// uploadCodes are the codes the upload package declares, read from its
// source so that a new code cannot be missed here.
func uploadCodes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../upload/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	ast.Inspect(f, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			if fn, ok := c.Fun.(*ast.Ident); ok && fn.Name == "newError" {
				s, _ := strconv.Unquote(c.Args[0].(*ast.BasicLit).Value)
				codes = append(codes, s)
			}
		}
		return true
	})
	if len(codes) < 15 {
		t.Fatalf("found only %d codes in ../upload/errors.go", len(codes))
	}
	return codes
}

// TestErrorStatuses: every error code, the service's and the handler's,
// answers its documented status (and the retryable 503s a Retry-After).
func TestErrorStatuses(t *testing.T) {
	want := map[string]int{
		"invalid_json": 400, "unknown_field": 400, "invalid_request": 400, "invalid_filename": 400,
		"invalid_metadata": 400, "invalid_parts": 400, "size_required": 400, "checksum_required": 400,
		"unauthenticated": 401,
		"not_found":       404, "method_not_allowed": 405,
		"object_missing": 409, "intent_finalized": 409, "busy": 409, "bucket_changed": 409,
		"expired":        410,
		"body_too_large": 413, "unsupported_media_type": 415,
		"type_not_allowed": 422, "too_large": 422, "metadata_too_large": 422, "upload_rejected": 422,
		"internal_error":  500,
		"storage_error":   502,
		"storage_timeout": 503, "store_unavailable": 503,
		"quota_exceeded": 429, "rate_limited": 429,
		"scan_pending": 409,
	}
	codes := uploadCodes(t)
	for _, e := range []*upload.Error{errInvalidJSON, errUnknownField, errBodyTooLarge, errUnsupportedMedia, errMethodNotAllowed, errRouteNotFound, errInternal} {
		codes = append(codes, e.Code)
	}
	for _, code := range codes {
		w, ok := want[code]
		if !ok {
			t.Errorf("code %q has no expected status in this test", code)
			continue
		}
		if statusOf[code] != w {
			t.Errorf("statusOf[%q] = %d, want %d", code, statusOf[code], w)
		}
		for name, write := range map[string]func(http.ResponseWriter, error){
			"api":  func(w http.ResponseWriter, err error) { writeError(w, err, nil) },
			"uppy": uppyError,
		} {
			rec := httptest.NewRecorder()
			write(rec, &upload.Error{Code: code, Message: "m"})
			if rec.Code != w || errCode(t, rec) != code {
				t.Errorf("%s %q: answered %d %s", name, code, rec.Code, rec.Body)
			}
			if ra := rec.Header().Get("Retry-After"); (w == 503) != (ra != "") {
				t.Errorf("%s %q: Retry-After %q", name, code, ra)
			}
		}
	}
	for code := range statusOf {
		if _, ok := want[code]; !ok {
			t.Errorf("statusOf maps %q, which no error has", code)
		}
	}
	// Anything that is not an *upload.Error is a 500 that says nothing.
	rec := httptest.NewRecorder()
	writeError(rec, errors.New("secret detail"), nil)
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "secret") {
		t.Errorf("plain error: %d %s", rec.Code, rec.Body)
	}
}

// TestInvalidUTF8Refused: invalid UTF-8 in the raw body is refused before
// JSON decoding can replace it: in the filename with invalid_filename, as
// README documents, elsewhere with invalid_json.
func TestInvalidUTF8Refused(t *testing.T) {
	for body, code := range map[string]string{
		"{\"filename\":\"a\xffb.png\",\"content_type\":\"image/png\"}":   "invalid_filename",
		"{\"filename\":\"\xc0\xaf.png\",\"content_type\":\"image/png\"}": "invalid_filename",
		"{\"filename\":\"a.png\",\"content_type\":\"image/png\xfe\"}":    "invalid_json",
		"{\"filename\":\"a.png\",\"metadata\":{\"k\":\"\xff\"}}":         "invalid_json",
		"\xff":                     "invalid_json",
		"{\"fil\xffename\":\"a\"}": "invalid_json",
	} {
		r := httptest.NewRequest("POST", "/uploads", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var req upload.CreateRequest
		err := readBody(r, 4096, &req)
		var ue *upload.Error
		if !errors.As(err, &ue) || ue.Code != code {
			t.Errorf("%q: %v, want %s", body, err, code)
		}
	}
	r := httptest.NewRequest("POST", "/uploads", strings.NewReader(`{"filename":"café ☕.png","content_type":"image/png"}`))
	r.Header.Set("Content-Type", "application/json")
	var req upload.CreateRequest
	if err := readBody(r, 4096, &req); err != nil || req.Filename != "café ☕.png" {
		t.Errorf("valid UTF-8: %v %q", err, req.Filename)
	}
}

// TestS3TimeoutSubdirective: s3_timeout parses, and bad values are refused.
func TestS3TimeoutSubdirective(t *testing.T) {
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("direct_upload {\n bucket b\n s3_timeout 7s\n}")); err != nil {
		t.Fatal(err)
	}
	if h.S3Timeout != caddy.Duration(7*time.Second) {
		t.Fatalf("s3_timeout = %v", h.S3Timeout)
	}
	for _, bad := range []string{"soon", "0s", "-1s"} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("direct_upload {\n s3_timeout " + bad + "\n}")); err == nil {
			t.Errorf("s3_timeout %s accepted", bad)
		}
	}
}
