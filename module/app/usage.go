package app

import (
	"net/http"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

// usageView is an identity's quota usage in one profile, beside the caps.
type usageView struct {
	store.Usage
	Limits usageLimits `json:"limits"`
}

type usageLimits struct {
	MaxPending     int64  `json:"max_pending,omitempty"`
	MaxReserved    int64  `json:"max_reserved,omitempty"`
	MaxVerified    int64  `json:"max_verified,omitempty"`
	VerifiedWindow string `json:"verified_window,omitempty"`
	Rate           string `json:"rate,omitempty"`
}

// serveUsage answers GET /direct_upload/usage?profile=&identity= (or
// &ip= for routes without identity): the counters the quotas check.
func serveUsage(w http.ResponseWriter, r *http.Request, app *App, db store.Store) error {
	if r.Method != http.MethodGet {
		return apiErr(http.StatusMethodNotAllowed, "GET only")
	}
	q := r.URL.Query()
	p, ok := app.Profile(q.Get("profile"))
	if !ok {
		return apiErr(http.StatusNotFound, "no profile %q", q.Get("profile"))
	}
	subject := q.Get("identity")
	if ip := q.Get("ip"); subject == "" && ip != "" {
		subject = "ip:" + ip
	}
	if subject == "" {
		return apiErr(http.StatusBadRequest, "give identity= (or ip= for routes without identity)")
	}
	qs, ok := db.(store.QuotaStore)
	if !ok {
		return apiErr(http.StatusNotImplemented, "this store keeps no quota counters")
	}
	window := p.Limits.VerifiedWindow
	if window <= 0 {
		window = 24 * time.Hour
	}
	u, err := qs.Usage(r.Context(), p.Name, subject, time.Now().Add(-window))
	if err != nil {
		return apiErr(http.StatusServiceUnavailable, "%v", err)
	}
	return writeAdmin(w, usageView{Usage: u, Limits: limitsView(p.Limits)})
}

func limitsView(l upload.Limits) usageLimits {
	v := usageLimits{MaxPending: l.MaxPending, MaxReserved: l.MaxReserved, MaxVerified: l.MaxVerified}
	if l.MaxVerified > 0 {
		v.VerifiedWindow = l.VerifiedWindow.String()
	}
	if l.Rate.N > 0 {
		v.Rate = upload.FormatRate(l.Rate)
	}
	return v
}
