package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestAuthUploadPublicClient: without a session, forward_auth lets through
// only a GET of the plugin's client script, and never names a user.
func TestAuthUploadPublicClient(t *testing.T) {
	h := newServer(nil).routes()
	cases := []struct {
		method, uri string
		want        int
	}{
		{"GET", "/uploads/direct-upload.js", 200},
		{"HEAD", "/uploads/direct-upload.d.ts", 200},
		{"GET", "/uploads/direct-upload.js?v=2", 200},
		{"POST", "/uploads/direct-upload.js", 401},
		{"GET", "/uploads/01m8h0g1saxzbz711pavtr43xf", 401},
		{"POST", "/uploads", 401},
		{"GET", "/uploads/direct-upload.js/../01m8h0g1saxzbz711pavtr43xf", 401},
		{"GET", "", 401},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodGet, "/auth/upload", nil)
		r.Header.Set("X-Forwarded-Method", tc.method)
		r.Header.Set("X-Forwarded-Uri", tc.uri)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != tc.want || rec.Header().Get("X-User-Id") != "" {
			t.Errorf("%s %q: %d X-User-Id=%q, want %d and no user", tc.method, tc.uri, rec.Code, rec.Header().Get("X-User-Id"), tc.want)
		}
	}
}
