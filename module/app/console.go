package app

import (
	"context"
	"net/http"
	"sort"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

// ConsoleSource is what the operator console (module/console) reads and
// does: the running app's store, its profiles and their webhook endpoints,
// and the admin API's redelivery. It is taken from the running app on
// each request, through Console, so reloads are followed.
type ConsoleSource struct {
	Store    store.Store
	Profiles []ConsoleProfile
	disp     *webhook.Dispatcher
}

// ConsoleProfile is a profile of the running config. WebhookURL is the
// endpoint as configured (it may carry a token: the console strips it
// before showing anything); empty when the profile has no webhook.
type ConsoleProfile struct {
	Name       string
	WebhookURL string
}

// Console returns the running app's data for the console, or an error when
// the app has not started.
func Console() (*ConsoleSource, error) {
	a := running.Load()
	if a == nil {
		return nil, ErrNotStarted
	}
	db, err := a.Store()
	if err != nil {
		return nil, err
	}
	disp, err := a.Dispatcher()
	if err != nil {
		return nil, err
	}
	src := &ConsoleSource{Store: db, disp: disp}
	a.mu.Lock()
	for name := range a.profiles {
		p := ConsoleProfile{Name: name}
		if ep := a.webhooks[name]; ep != nil {
			p.WebhookURL = ep.URL
		}
		src.Profiles = append(src.Profiles, p)
	}
	a.mu.Unlock()
	sort.Slice(src.Profiles, func(i, j int) bool { return src.Profiles[i].Name < src.Profiles[j].Name })
	return src, nil
}

// Redeliver makes one event due again now (the admin API's redeliver).
func (c *ConsoleSource) Redeliver(ctx context.Context, id string) (*store.Event, error) {
	return c.disp.Redeliver(ctx, id)
}

// RedeliverDead makes every dead event due again, page by page, as the
// admin API's POST /direct_upload/deliveries/redeliver does.
func (c *ConsoleSource) RedeliverDead(r *http.Request) (int, error) {
	return redeliverAll(r, c.Store, c.disp, store.DeliveryDead)
}

// ConsoleChecks returns the start-up checks of each profile as the admin
// API's GET /direct_upload/health reports them, or nil when they are not
// available (no app running, or no profile registered checks); the
// console then says so.
func ConsoleChecks(ctx context.Context) any {
	a := running.Load()
	if a == nil {
		return nil
	}
	profiles := a.Health()
	if len(profiles) == 0 {
		return nil
	}
	ok := true
	for _, p := range profiles {
		ok = ok && p.OK
	}
	return map[string]any{"ok": ok, "profiles": profiles}
}
