package app

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/doctor"
)

// StartupCheckOK is 1 when a profile's start-up check passed at its last
// run, 0 when it did not (skipped checks count as not passed).
var StartupCheckOK = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Namespace: "direct_upload", Name: "startup_check_ok",
	Help: "Whether a profile's start-up check (credentials, addressing, bucket) passed at its last run.",
}, []string{"profile", "check"})

// The start-up checks' retry delays: doubled after each failing run, from
// HealthRetryMin up to HealthRetryMax.
var (
	HealthRetryMin = time.Second
	HealthRetryMax = time.Minute
)

// health runs each profile's start-up checks in the background and keeps
// their last results for the admin API.
type health struct {
	targets []doctor.Target
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu    sync.Mutex
	state map[string]*ProfileHealth
}

// ProfileHealth is a profile's start-up check state as the admin API shows it.
type ProfileHealth struct {
	OK      bool            `json:"ok"`
	Checks  []doctor.Result `json:"checks"`
	LastRun time.Time       `json:"last_run,omitzero"`
	Runs    int             `json:"runs"`
	NextRun time.Time       `json:"next_run,omitzero"`
}

// RegisterChecks adds a profile's start-up checks, run once the app starts.
func (a *App) RegisterChecks(t doctor.Target) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.health == nil {
		a.health = &health{state: map[string]*ProfileHealth{}}
	}
	a.health.targets = append(a.health.targets, t)
	a.health.state[t.Profile] = &ProfileHealth{Checks: []doctor.Result{}}
}

// startChecks runs each profile's checks in the background until they pass
// or the app stops; it never blocks start.
func (a *App) startChecks() {
	a.mu.Lock()
	h := a.health
	a.mu.Unlock()
	if h == nil || h.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	for _, t := range h.targets {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.loop(ctx, t, a.logger.Named("startup_check"))
		}()
	}
}

// stopChecks stops the checks and waits for them.
func (a *App) stopChecks() {
	a.mu.Lock()
	h := a.health
	a.mu.Unlock()
	if h == nil || h.cancel == nil {
		return
	}
	h.cancel()
	h.wg.Wait()
}

func (h *health) loop(ctx context.Context, t doctor.Target, log *zap.Logger) {
	delay := HealthRetryMin
	logged := map[string]string{} // check -> detail last logged
	for {
		rs := doctor.Startup(ctx, t)
		if ctx.Err() != nil {
			return
		}
		ok := !doctor.Failed(rs)
		for _, r := range rs {
			v := 0.0
			if r.Status == doctor.OK || r.Status == doctor.Warn {
				v = 1
			}
			StartupCheckOK.WithLabelValues(t.Profile, r.Check).Set(v)
			if r.Status == doctor.Fail && logged[r.Check] != r.Detail {
				// Once per distinct failure, not on every retry.
				log.Error("start-up check failed; uploads of this profile will fail until it is fixed",
					zap.String("profile", t.Profile), zap.String("check", r.Check),
					zap.String("problem", r.Detail), zap.String("fix", r.Fix))
				logged[r.Check] = r.Detail
			}
		}
		now := time.Now()
		h.mu.Lock()
		st := h.state[t.Profile]
		st.OK, st.Checks, st.LastRun = ok, rs, now
		st.Runs++
		st.NextRun = time.Time{}
		if !ok {
			st.NextRun = now.Add(delay)
		}
		h.mu.Unlock()
		if ok {
			if len(logged) > 0 {
				log.Info("start-up checks pass now", zap.String("profile", t.Profile))
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, HealthRetryMax)
	}
}

// Health returns each profile's start-up check state.
func (a *App) Health() map[string]ProfileHealth {
	a.mu.Lock()
	h := a.health
	a.mu.Unlock()
	out := map[string]ProfileHealth{}
	if h == nil {
		return out
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, st := range h.state {
		c := *st
		c.Checks = append([]doctor.Result(nil), st.Checks...)
		out[name] = c
	}
	return out
}

// serveHealth answers GET /direct_upload/health: 200 when every profile's
// start-up checks passed, 503 otherwise (failing or not run yet), with
// each profile's checks.
func serveHealth(w http.ResponseWriter, r *http.Request, app *App) error {
	if r.Method != http.MethodGet {
		return apiErr(http.StatusMethodNotAllowed, "GET only")
	}
	profiles := app.Health()
	ok := true
	names := make([]string, 0, len(profiles))
	for name, p := range profiles {
		ok = ok && p.OK
		names = append(names, name)
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	return writeAdmin(w, map[string]any{"ok": ok, "profiles": profiles})
}
