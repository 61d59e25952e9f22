package handler

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

func TestUnmarshalQuota(t *testing.T) {
	d := caddyfile.NewTestDispenser(`direct_upload {
		bucket b
		max_pending 5
		max_reserved 1GiB
		max_verified 2GiB per 24h
		rate 20/1m
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := QuotaConfig{MaxPending: 5, MaxReserved: 1 << 30, MaxVerified: 2 << 30,
		MaxVerifiedPer: caddy.Duration(24 * time.Hour), Rate: "20/1m"}
	if h.QuotaConfig != want {
		t.Fatalf("got %+v, want %+v", h.QuotaConfig, want)
	}
	// The JSON config carries the same fields on the profile.
	j, _ := json.Marshal(h)
	for _, f := range []string{`"max_pending":5`, `"max_reserved":1073741824`, `"max_verified":2147483648`, `"max_verified_per":86400000000000`, `"rate":"20/1m"`} {
		if !strings.Contains(string(j), f) {
			t.Errorf("JSON %s lacks %s", j, f)
		}
	}
	l, err := h.QuotaConfig.limits()
	if err != nil || l.Rate != (upload.Rate{N: 20, Per: time.Minute}) || l.VerifiedWindow != 24*time.Hour {
		t.Fatalf("limits %+v, %v", l, err)
	}
}

func TestUnmarshalQuotaErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"max_pending 0", "positive number"},
		{"max_pending five", "positive number"},
		{"max_reserved 1 GiB", "one size"},
		{"max_verified 1GiB", "per <duration>"},
		{"max_verified 1GiB every 24h", "per <duration>"},
		{"max_verified 1GiB per 10s", "at least 1m"},
		{"rate 20", "<n>/<duration>"},
		{"rate 0/1m", "<n>/<duration>"},
		{"rate 20/100ms", "at least 1s"},
		{"rates 20/1m", `did you mean "rate"`},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("direct_upload {\n" + tc.line + "\n}"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error saying %q", tc.line, err, tc.want)
		}
	}
}

func TestQuotaErrorsAnswer429(t *testing.T) {
	for _, tc := range []struct {
		err   error
		retry string
	}{
		{&upload.Error{Code: "rate_limited", Message: "m", RetryAfter: 2500 * time.Millisecond}, "3"},
		{&upload.Error{Code: "quota_exceeded", Message: "max_pending: ..."}, ""},
		{&upload.Error{Code: "quota_exceeded", Message: "max_verified: ...", RetryAfter: time.Hour}, "3600"},
	} {
		w := httptest.NewRecorder()
		writeError(w, tc.err, nil)
		var ue *upload.Error
		errors.As(tc.err, &ue)
		if w.Code != 429 || w.Header().Get("Retry-After") != tc.retry || !strings.Contains(w.Body.String(), `"code":"`+ue.Code+`"`) {
			t.Errorf("%v: %d Retry-After %q %s", tc.err, w.Code, w.Header().Get("Retry-After"), w.Body.String())
		}
	}
}
