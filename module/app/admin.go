package app

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI is the admin.api.direct_upload module: operators' routes on
// Caddy's admin endpoint to see intents and webhook deliveries, force a
// re-check of an intent and redeliver dead webhooks.
//
//	GET  /direct_upload/intents?status=pending&profile=&after=<cursor>&limit=100
//	GET  /direct_upload/intents/{id}              the intent and its deliveries
//	POST /direct_upload/intents/{id}/recheck      look at its object now
//	GET  /direct_upload/deliveries?state=dead&after=<id>&limit=100
//	GET  /direct_upload/deliveries/{event_id}
//	POST /direct_upload/deliveries/{event_id}/redeliver
//	POST /direct_upload/deliveries/redeliver?state=dead
//	GET  /direct_upload/health                   start-up checks per profile
//	GET  /direct_upload/usage?profile=&identity= an identity's quota usage
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.direct_upload",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/direct_upload/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// deliveryView is an outbox event as operators see it.
type deliveryView struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	CreatedAt time.Time      `json:"created_at"`
	IntentID  string         `json:"intent_id"`
	Profile   string         `json:"profile"`
	Key       string         `json:"key"`
	Status    store.Status   `json:"status"`
	Delivery  store.Delivery `json:"delivery"`
}

func viewEvent(ev *store.Event) deliveryView {
	return deliveryView{ID: ev.ID, Type: ev.Type, CreatedAt: ev.CreatedAt, IntentID: ev.Intent.ID,
		Profile: ev.Intent.Profile, Key: ev.Intent.Key, Status: ev.Intent.Status, Delivery: ev.Delivery}
}

// apiErr is an admin API error; a store that cannot be reached (its error
// among a) answers 503, not 500: the operator may simply try again.
func apiErr(status int, format string, a ...any) error {
	for _, x := range a {
		if err, ok := x.(error); ok && status == http.StatusInternalServerError && errors.Is(err, store.ErrUnavailable) {
			status = http.StatusServiceUnavailable
		}
	}
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, a...)}
}

func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	app := running.Load()
	if app == nil {
		return apiErr(http.StatusServiceUnavailable, "direct_upload is not running")
	}
	db, err := app.Store()
	if err != nil {
		return apiErr(http.StatusServiceUnavailable, "%v", err)
	}
	disp, _ := app.Dispatcher()
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, "/direct_upload/"), "/")
	parts := strings.Split(rest, "/")
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return apiErr(http.StatusBadRequest, "limit must be 1-1000")
		}
	}
	switch parts[0] {
	case "health":
		return serveHealth(w, r, app)
	case "intents":
		return serveIntents(w, r, app, db, parts[1:], limit)
	case "usage":
		return serveUsage(w, r, app, db)
	case "deliveries":
	default:
		return apiErr(http.StatusNotFound, "no such route")
	}
	state := store.DeliveryState(q.Get("state"))
	switch state {
	case "", store.DeliveryPending, store.DeliveryDelivered, store.DeliveryDead, store.DeliverySkipped:
	default:
		return apiErr(http.StatusBadRequest, "unknown state %q", state)
	}
	switch {
	case len(parts) == 1 && r.Method == http.MethodGet:
		evs, err := db.Events(r.Context(), state, q.Get("after"), limit)
		if err != nil {
			return apiErr(http.StatusInternalServerError, "listing events: %v", err)
		}
		views, damaged := make([]deliveryView, 0, len(evs)), []string{}
		for i := range evs {
			if evs[i].Damaged != "" {
				damaged = append(damaged, evs[i].ID)
				continue
			}
			views = append(views, viewEvent(&evs[i]))
		}
		out := map[string]any{"deliveries": views, "damaged": damaged}
		if len(evs) > 0 {
			out["next"] = evs[len(evs)-1].ID
		}
		return writeAdmin(w, out)
	case len(parts) == 2 && parts[1] == "redeliver" && r.Method == http.MethodPost:
		if state == "" {
			state = store.DeliveryDead
		}
		n, err := redeliverAll(r, db, disp, state)
		if err != nil {
			return apiErr(http.StatusInternalServerError, "redelivering: %v", err)
		}
		return writeAdmin(w, map[string]any{"redelivered": n})
	case len(parts) == 2 && r.Method == http.MethodGet:
		ev, err := db.Event(r.Context(), parts[1])
		if errors.Is(err, store.ErrNotFound) {
			return apiErr(http.StatusNotFound, "no event %q", parts[1])
		} else if err != nil {
			return apiErr(http.StatusInternalServerError, "%v", err)
		}
		return writeAdmin(w, viewEvent(ev))
	case len(parts) == 3 && parts[2] == "redeliver" && r.Method == http.MethodPost:
		ev, err := disp.Redeliver(r.Context(), parts[1])
		if errors.Is(err, store.ErrNotFound) {
			return apiErr(http.StatusNotFound, "no event %q", parts[1])
		} else if err != nil {
			return apiErr(http.StatusInternalServerError, "%v", err)
		}
		return writeAdmin(w, viewEvent(ev))
	}
	return apiErr(http.StatusNotFound, "no such route or method")
}

// serveIntents answers the intent routes.
func serveIntents(w http.ResponseWriter, r *http.Request, app *App, db store.Store, parts []string, limit int) error {
	q := r.URL.Query()
	switch {
	case len(parts) == 0 && r.Method == http.MethodGet:
		status := store.Status(q.Get("status"))
		switch status {
		case store.StatusPending, store.StatusCompleted, store.StatusRejected, store.StatusFailed, store.StatusExpired:
		default:
			return apiErr(http.StatusBadRequest, "status must be pending, completed, rejected, failed or expired")
		}
		var after store.Cursor
		if c := q.Get("after"); c != "" {
			var err error
			if after, err = base64.RawURLEncoding.DecodeString(c); err != nil {
				return apiErr(http.StatusBadRequest, "bad cursor")
			}
		}
		ins, next, err := db.ListStatus(r.Context(), status, q.Get("profile"), after, limit)
		if err != nil {
			return apiErr(http.StatusInternalServerError, "listing intents: %v", err)
		}
		// Records the store cannot read are listed apart, by id, so one
		// damaged record does not hide the others (the store logged it).
		good, damaged := make([]*store.Intent, 0, len(ins)), []string{}
		for _, in := range ins {
			if in.Damaged != "" {
				damaged = append(damaged, in.ID)
			} else {
				good = append(good, in)
			}
		}
		out := map[string]any{"intents": good, "damaged": damaged}
		if next != nil {
			out["next"] = base64.RawURLEncoding.EncodeToString(next)
		}
		return writeAdmin(w, out)
	case len(parts) == 1 && r.Method == http.MethodGet:
		in, err := db.Get(r.Context(), parts[0])
		if errors.Is(err, store.ErrNotFound) {
			return apiErr(http.StatusNotFound, "no intent %q", parts[0])
		} else if err != nil {
			return apiErr(http.StatusInternalServerError, "%v", err)
		}
		deliveries := []deliveryView{}
		for _, id := range in.Events {
			if ev, err := db.Event(r.Context(), id); err == nil {
				deliveries = append(deliveries, viewEvent(ev))
			}
		}
		return writeAdmin(w, map[string]any{"intent": in, "deliveries": deliveries})
	case len(parts) == 2 && parts[1] == "recheck" && r.Method == http.MethodPost:
		in, err := db.Get(r.Context(), parts[0])
		if errors.Is(err, store.ErrNotFound) {
			return apiErr(http.StatusNotFound, "no intent %q", parts[0])
		} else if err != nil {
			return apiErr(http.StatusInternalServerError, "%v", err)
		}
		p, ok := app.Profile(in.Profile)
		if !ok {
			return apiErr(http.StatusConflict, "profile %q is not in the running config", in.Profile)
		}
		svc, err := app.Service()
		if err != nil {
			return apiErr(http.StatusServiceUnavailable, "%v", err)
		}
		out, err := svc.Check(r.Context(), p, in.ID)
		if err != nil {
			return apiErr(http.StatusBadGateway, "re-check decided nothing: %v", err)
		}
		return writeAdmin(w, map[string]any{"intent": out})
	}
	return apiErr(http.StatusNotFound, "no such route or method")
}

// redeliverAll makes every event in state due again, page by page.
func redeliverAll(r *http.Request, db store.Store, disp *webhook.Dispatcher, state store.DeliveryState) (int, error) {
	n, after := 0, ""
	for {
		evs, err := db.Events(r.Context(), state, after, 500)
		if err != nil {
			return n, err
		}
		if len(evs) == 0 {
			return n, nil
		}
		for _, ev := range evs {
			if ev.Damaged != "" {
				continue
			}
			if _, err := disp.Redeliver(r.Context(), ev.ID); err != nil {
				return n, err
			}
			n++
		}
		after = evs[len(evs)-1].ID
	}
}

func writeAdmin(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

var _ caddy.AdminRouter = (*adminAPI)(nil)
