// Package console is the operator console: a small web page, served by the
// http.handlers.direct_upload_console module, where an operator sees what
// the uploads and their webhooks did over the last hour, follows one
// intent's story, and redelivers dead webhooks.
//
// It reads the running direct_upload app (the data the admin API shows)
// and never shows a secret, a signature or a webhook URL's token. It
// refuses to serve unless an authentication handler (basic_auth) ran
// before it, and its state-changing calls are POSTs guarded against
// cross-site requests.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/app"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("direct_upload_console", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("direct_upload_console", httpcaddyfile.Before, "reverse_proxy")
}

// DefaultBasePath is where the console is mounted unless base_path says.
const DefaultBasePath = "/_console"

// TokenHeader carries the page's CSRF token on every POST.
const TokenHeader = "X-Console-Token"

// UserPlaceholder is set by Caddy's authentication handler (basic_auth)
// to the user it let in; the console refuses to serve without it.
const UserPlaceholder = "http.auth.user.id"

// Handler is the http.handlers.direct_upload_console module.
type Handler struct {
	// BasePath is the path prefix the console answers under. Default: /_console.
	BasePath string `json:"base_path,omitempty"`

	logger *zap.Logger
	token  string
	source func() (*app.ConsoleSource, error)
	checks func(context.Context) any
	now    func() time.Time
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.direct_upload_console",
		New: func() caddy.Module { return new(Handler) },
	}
}

// processToken is the CSRF token of this process: random, embedded in the
// page, required on every POST. It changes at each restart.
var processToken = newToken()

func newToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// Provision sets defaults.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	return h.setup()
}

func (h *Handler) setup() error {
	if h.BasePath == "" {
		h.BasePath = DefaultBasePath
	}
	h.BasePath = "/" + strings.Trim(h.BasePath, "/")
	if h.logger == nil {
		h.logger = zap.NewNop()
	}
	if h.token == "" {
		h.token = processToken
	}
	if h.source == nil {
		h.source = app.Console
	}
	if h.checks == nil {
		h.checks = app.ConsoleChecks
	}
	if h.now == nil {
		h.now = time.Now
	}
	return nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var c Handler
	err := c.UnmarshalCaddyfile(h.Dispenser)
	return &c, err
}

// UnmarshalCaddyfile reads:
//
//	direct_upload_console [<base_path>] {
//		base_path <path>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		h.BasePath = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "base_path":
			if !d.AllArgs(&h.BasePath) {
				return d.ArgErr()
			}
		default:
			return d.Errf("unknown direct_upload_console option %q", d.Val())
		}
	}
	return nil
}

// ServeHTTP serves the page, its assets and its JSON endpoints under the
// base path, and passes anything else on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	p := r.URL.Path
	if p != h.BasePath && !strings.HasPrefix(p, h.BasePath+"/") {
		return next.ServeHTTP(w, r)
	}
	rel := strings.TrimPrefix(p, h.BasePath)
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	user := operator(r)
	if user == "" {
		h.logger.Warn("operator console refused: no authentication handler in front of it",
			zap.String("path", p), zap.String("remote", r.RemoteAddr))
		if strings.HasPrefix(rel, "/api/") {
			return writeErr(w, http.StatusForbidden, "unprotected",
				"the console is not behind an authentication handler (basic_auth); it serves nothing until it is")
		}
		hd.Set("Content-Type", "text/html; charset=utf-8")
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.WriteHeader(http.StatusForbidden)
		_, err := w.Write([]byte(unprotectedPage))
		return err
	}
	switch {
	case rel == "":
		http.Redirect(w, r, h.BasePath+"/", http.StatusFound)
		return nil
	case rel == "/":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return writeErr(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		}
		return h.servePage(w, user)
	case strings.HasPrefix(rel, "/api/"):
		return h.serveAPI(w, r, user, strings.TrimPrefix(rel, "/api/"))
	}
	if serveAsset(w, r, strings.TrimPrefix(rel, "/")) {
		return nil
	}
	return writeErr(w, http.StatusNotFound, "not_found", "no such console page")
}

// operator is the authenticated user basic_auth (or another auth
// handler) let in, or "".
func operator(r *http.Request) string {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return ""
	}
	u, _ := repl.GetString(UserPlaceholder)
	return u
}

var pageTmpl = template.Must(template.ParseFS(assets, "assets/index.html"))

func (h *Handler) servePage(w http.ResponseWriter, user string) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return pageTmpl.Execute(w, map[string]string{"Token": h.token, "User": user, "Base": h.BasePath})
}

// checkCSRF lets a state-changing request through only if it carries the
// page's token in TokenHeader and, when the browser says where it comes
// from (Sec-Fetch-Site, Origin), it comes from this very origin.
func checkCSRF(r *http.Request, token string) error {
	if r.Method != http.MethodPost {
		return errors.New("state-changing calls are POSTs")
	}
	got := r.Header.Get(TokenHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		return fmt.Errorf("missing or wrong %s header: reload the console page", TokenHeader)
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" {
		return fmt.Errorf("cross-site request (Sec-Fetch-Site: %s)", s)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return errors.New("request from another origin")
		}
	}
	return nil
}

func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request, user, route string) error {
	parts := strings.Split(strings.Trim(route, "/"), "/")
	if r.Method == http.MethodPost {
		if err := checkCSRF(r, h.token); err != nil {
			h.logger.Warn("operator console refused a POST", zap.String("operator", user),
				zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr), zap.String("reason", err.Error()))
			return writeErr(w, http.StatusForbidden, "csrf", err.Error())
		}
	} else if r.Method != http.MethodGet {
		return writeErr(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET, or POST for actions")
	}
	if parts[0] == "checks" && len(parts) == 1 && r.Method == http.MethodGet {
		return writeJSON(w, map[string]any{"checks": h.checks(r.Context())})
	}
	src, err := h.source()
	if err != nil {
		return writeErr(w, http.StatusServiceUnavailable, "not_running", "direct_upload is not running: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	r = r.WithContext(ctx)
	get := r.Method == http.MethodGet
	switch {
	case get && len(parts) == 1 && parts[0] == "overview":
		ov, err := overview(ctx, src, h.now())
		if err != nil {
			return writeErr(w, http.StatusInternalServerError, "store", err.Error())
		}
		return writeJSON(w, ov)
	case get && len(parts) == 1 && parts[0] == "intents":
		res, err := search(ctx, src, r.URL.Query().Get("q"), store.Status(r.URL.Query().Get("status")))
		if err != nil {
			return writeErr(w, http.StatusBadRequest, "bad_search", err.Error())
		}
		return writeJSON(w, res)
	case get && len(parts) == 2 && parts[0] == "intents":
		st, err := story(ctx, src, parts[1])
		if errors.Is(err, store.ErrNotFound) {
			return writeErr(w, http.StatusNotFound, "not_found", "no intent with that id")
		} else if err != nil {
			return writeErr(w, http.StatusInternalServerError, "store", err.Error())
		}
		return writeJSON(w, st)
	case get && len(parts) == 1 && parts[0] == "dead":
		res, err := deadList(ctx, src, r.URL.Query().Get("after"))
		if err != nil {
			return writeErr(w, http.StatusBadRequest, "bad_listing", err.Error())
		}
		return writeJSON(w, res)
	case !get && len(parts) == 2 && parts[0] == "deliveries" && parts[1] == "redeliver":
		n, err := src.RedeliverDead(r)
		h.logger.Info("operator console: redeliver every dead webhook", zap.String("operator", user),
			zap.Int("redelivered", n), zap.String("remote", r.RemoteAddr), zap.NamedError("failure", err))
		if err != nil {
			return writeErr(w, http.StatusInternalServerError, "store", fmt.Sprintf("redelivered %d, then: %v", n, err))
		}
		return writeJSON(w, map[string]any{"redelivered": n})
	case !get && len(parts) == 3 && parts[0] == "deliveries" && parts[2] == "redeliver":
		id := parts[1]
		if !validEventID(id) {
			return writeErr(w, http.StatusBadRequest, "bad_id", "not an event id")
		}
		ev, err := src.Redeliver(ctx, id)
		h.logger.Info("operator console: redeliver webhook", zap.String("operator", user),
			zap.String("event_id", id), zap.String("remote", r.RemoteAddr), zap.NamedError("failure", err))
		if errors.Is(err, store.ErrNotFound) {
			return writeErr(w, http.StatusNotFound, "not_found", "no event with that id")
		} else if err != nil {
			return writeErr(w, http.StatusInternalServerError, "store", err.Error())
		}
		return writeJSON(w, map[string]any{"delivery": viewDelivery(ev, endpointOf(src, ev.Intent.Profile))})
	}
	return writeErr(w, http.StatusNotFound, "not_found", "no such console endpoint")
}

// validEventID reports whether s has the shape of an outbox event id.
func validEventID(s string) bool {
	return strings.HasPrefix(s, "evt_") && upload.ValidID(s[4:])
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// unprotectedPage is all an unauthenticated visitor gets.
const unprotectedPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Console not protected</title></head>
<body><div role="alert" id="unprotected" style="background:#b42318;color:#fff;padding:1em 1.5em;font:16px system-ui,sans-serif">
<strong>This operator console is not protected, so it shows nothing.</strong>
Put an authentication handler in front of it, for example in the Caddyfile:
<pre>route /_console/* {
	basic_auth {
		{$CONSOLE_USER} {$CONSOLE_PASSWORD_HASH}
	}
	direct_upload_console
}</pre>
Make the hash with <code>caddy hash-password</code>. See docs/console.md.</div></body></html>
`

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
