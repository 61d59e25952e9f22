// Command backend is the "legacy backend" of the direct_upload demo.
//
// Caddy serves one origin: requests under /uploads are answered by the
// direct_upload plugin, after Caddy's forward_auth has asked this backend
// who the user is (GET /auth/upload); every other path is reverse-proxied
// here. The backend therefore only has to know about sessions, answer the
// auth question, receive the plugin's webhooks and serve the demo page.
//
//	GET  /                  the demo page (logs in as alice when there is no session)
//	POST /login             log in as alice or bob (form field or JSON "user")
//	POST /logout            end the session
//	GET  /auth/upload       forward_auth: 200 with X-User-Id, or 401 (200 without a user
//	                        for a GET of the plugin's public client script)
//	POST /webhooks/uploads  receive a webhook event (Standard Webhooks)
//	GET  /webhooks/uploads  the last events received, newest first
//	GET  /healthz           liveness
//
// Webhooks are verified with the Standard Webhooks Go library when
// WEBHOOK_SECRET holds the endpoint's secret ("whsec_" + base64, the same
// one the plugin signs with); without it the backend warns at startup and
// accepts every event unverified, marking it "verified": false.
//
// Everything is kept in memory; restarting the backend logs everybody out
// and forgets the events.
package main

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log"
	"mime"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/dustin/go-humanize"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

//go:embed static
var staticFS embed.FS

var indexTmpl = template.Must(template.ParseFS(staticFS, "static/index.html"))

const (
	sessionCookie = "session"
	sessionTTL    = 12 * time.Hour
	// maxSessions bounds the session table: GET / creates a session for
	// every cookie-less visitor, so without a bound a loop of requests
	// would grow it forever.
	maxSessions = 10000

	maxLoginBody   = 4 << 10
	maxWebhookBody = 64 << 10
	webhookRingLen = 100
	// maxSeenWebhookIDs bounds the webhook ids remembered for
	// deduplication, well beyond the events a demo sees while the plugin
	// may still retry one.
	maxSeenWebhookIDs = 10000
	// maxMessageName bounds the file name quoted in a webhook answer.
	maxMessageName = 80
)

// users are the demo accounts; there are no passwords.
var users = []string{"alice", "bob"}

func knownUser(name string) bool {
	for _, u := range users {
		if u == name {
			return true
		}
	}
	return false
}

func main() {
	defAddr := os.Getenv("BACKEND_ADDR")
	if defAddr == "" {
		defAddr = "127.0.0.1:9000"
	}
	addr := flag.String("addr", defAddr, "listen address (env BACKEND_ADDR)")
	flag.Parse()

	var wh *standardwebhooks.Webhook
	if secret := os.Getenv("WEBHOOK_SECRET"); secret != "" {
		var err error
		if wh, err = parseWebhookSecret(secret); err != nil {
			log.Fatalf("backend: WEBHOOK_SECRET: %v", err)
		}
	} else {
		log.Printf("WARNING: WEBHOOK_SECRET is not set: webhooks are accepted WITHOUT signature verification " +
			"and stored as \"verified\": false; set it to the plugin's whsec_ secret")
	}

	srv := &http.Server{
		Addr:              *addr,
		Handler:           newServer(wh).routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	errc := make(chan error, 1)
	go func() {
		log.Printf("backend listening on http://%s", *addr)
		errc <- srv.ListenAndServe()
	}()

	select {
	case err := <-errc:
		log.Fatalf("backend: %v", err)
	case <-ctx.Done():
	}
	stop() // a second signal now kills the process the default way
	log.Printf("backend shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Printf("backend: shutdown: %v", err)
	}
}

// parseWebhookSecret checks a "whsec_" + base64 secret and returns its
// verifier.
func parseWebhookSecret(secret string) (*standardwebhooks.Webhook, error) {
	raw, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New("must start with whsec_")
	}
	if key, err := base64.StdEncoding.DecodeString(raw); err != nil || len(key) == 0 {
		return nil, errors.New("must be whsec_ followed by the base64 of a non-empty key")
	}
	return standardwebhooks.NewWebhook(secret)
}

// server holds the backend's in-memory state.
type server struct {
	sessions *sessions
	events   *eventRing
	// wh verifies webhook signatures; nil when WEBHOOK_SECRET is unset,
	// and then events are stored unverified.
	wh *standardwebhooks.Webhook
	// cop refuses cross-origin state-changing browser requests, using the
	// Sec-Fetch-Site and Origin headers browsers send.
	cop *http.CrossOriginProtection
}

func newServer(wh *standardwebhooks.Webhook) *server {
	cop := http.NewCrossOriginProtection()
	// Webhooks come from the plugin, server to server, not from browsers.
	cop.AddInsecureBypassPattern("POST /webhooks/uploads")
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross_origin", "cross-origin request refused")
	}))
	return &server{
		sessions: &sessions{m: make(map[string]session)},
		events:   newEventRing(),
		wh:       wh,
		cop:      cop,
	}
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /static/app.js", serveStatic("static/app.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /static/style.css", serveStatic("static/style.css", "text/css; charset=utf-8"))
	// The Uppy tab: its script, and the Uppy bundle built by examples/uppy-bundle.
	mux.HandleFunc("GET /static/uppy-tab.js", serveStatic("static/uppy-tab.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /static/uppy/uppy.min.js", serveStatic("static/uppy/uppy.min.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /static/uppy/uppy.min.css", serveStatic("static/uppy/uppy.min.css", "text/css; charset=utf-8"))
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("GET /auth/upload", s.authUpload)
	mux.HandleFunc("POST /webhooks/uploads", s.receiveWebhook)
	mux.HandleFunc("GET /webhooks/uploads", s.listWebhooks)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})
	return logRequests(s.cop.Handler(mux))
}

// --- sessions ---------------------------------------------------------------

type session struct {
	user    string
	expires time.Time
}

// sessions maps random tokens to users. Tokens travel in the session
// cookie (browsers) or as a Bearer token (tests, scripts).
type sessions struct {
	mu sync.Mutex
	m  map[string]session
}

func newToken() string {
	b := make([]byte, 16) // 128 bits
	rand.Read(b)          // never fails; it panics when the OS cannot provide randomness
	return hex.EncodeToString(b)
}

func (s *sessions) create(user string) string {
	token := newToken()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		for t, sess := range s.m {
			if now.After(sess.expires) {
				delete(s.m, t)
			}
		}
		// Still full: drop arbitrary sessions. Acceptable for a demo; a
		// real backend would persist sessions and rate-limit logins.
		for t := range s.m {
			if len(s.m) < maxSessions {
				break
			}
			delete(s.m, t)
		}
	}
	s.m[token] = session{user: user, expires: now.Add(sessionTTL)}
	return token
}

func (s *sessions) lookup(token string) (string, bool) {
	if token == "" {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[token]
	if !ok {
		return "", false
	}
	if time.Now().After(sess.expires) {
		delete(s.m, token)
		return "", false
	}
	return sess.user, true
}

func (s *sessions) revoke(token string) {
	s.mu.Lock()
	delete(s.m, token)
	s.mu.Unlock()
}

// requestTokens returns the Bearer token and the session cookie of r, each
// possibly empty.
func requestTokens(r *http.Request) (bearer, cookie string) {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		bearer = strings.TrimSpace(tok)
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		cookie = c.Value
	}
	return bearer, cookie
}

// userOf returns who r is logged in as. A Bearer token, when present,
// decides alone: an invalid one is not rescued by a valid cookie.
func (s *server) userOf(r *http.Request) (string, bool) {
	bearer, cookie := requestTokens(r)
	if bearer != "" {
		return s.sessions.lookup(bearer)
	}
	return s.sessions.lookup(cookie)
}

func setSessionCookie(w http.ResponseWriter, r *http.Request, token string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    token,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		// Behind Caddy with TLS the backend itself speaks plain HTTP; the
		// forwarded scheme tells whether the browser used HTTPS. Trusting
		// it only decides the Secure flag, so a forged value does no harm.
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	})
}

// startSession logs the client in as user, replacing any session it had.
func (s *server) startSession(w http.ResponseWriter, r *http.Request, user string) string {
	if _, cookie := requestTokens(r); cookie != "" {
		s.sessions.revoke(cookie)
	}
	token := s.sessions.create(user)
	setSessionCookie(w, r, token, int(sessionTTL/time.Second))
	return token
}

// --- handlers ---------------------------------------------------------------

// index serves the demo page. Without a valid session it logs in as alice,
// so the demo works without a click; ?guest=1 (where logging out leads)
// skips that, to show what an unauthenticated upload looks like.
func (s *server) index(w http.ResponseWriter, r *http.Request) {
	user, ok := s.userOf(r)
	if !ok && r.URL.Query().Get("guest") == "" {
		user = "alice"
		s.startSession(w, r, user)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// The page talks to its own origin and posts files to the bucket,
	// whose origin the backend does not know: hence connect-src *. Uppy's
	// stylesheet draws a few icons as data: SVG images.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; connect-src *; "+
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	if err := indexTmpl.Execute(w, struct {
		User  string
		Users []string
	}{user, users}); err != nil {
		log.Printf("rendering index: %v", err)
	}
}

func serveStatic(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeFileFS(w, r, staticFS, name)
	}
}

// login starts a session for the user named in the form field or JSON
// field "user". Clients that accept JSON get {"user","token"}, others are
// sent back to the page.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	var user string
	if mediaType(r.Header.Get("Content-Type")) == "application/json" {
		var body struct {
			User string `json:"user"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeBodyError(w, err)
			return
		}
		user = body.User
	} else {
		if err := r.ParseForm(); err != nil {
			writeBodyError(w, err)
			return
		}
		// PostForm, not Form: the user must come in the body, not the URL.
		user = r.PostForm.Get("user")
	}
	if !knownUser(user) {
		writeError(w, http.StatusBadRequest, "unknown_user", "user must be one of: "+strings.Join(users, ", "))
		return
	}
	token := s.startSession(w, r, user)
	if acceptsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"user": user, "token": token})
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout ends the session named by the cookie and by the Bearer token.
func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	bearer, cookie := requestTokens(r)
	s.sessions.revoke(bearer)
	s.sessions.revoke(cookie)
	setSessionCookie(w, r, "", -1)
	if acceptsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]any{"user": nil})
		return
	}
	http.Redirect(w, r, "/?guest=1", http.StatusSeeOther)
}

// authUpload answers Caddy's forward_auth for the upload API. Caddy calls
// it with GET and the original request's headers; on 200 it copies
// X-User-Id into the original request, which the plugin uses as identity.
// Any X-User-Id the client sent is ignored here: the answer is built only
// from the session.
func (s *server) authUpload(w http.ResponseWriter, r *http.Request) {
	// The cross-origin check of the mux passes every GET, but this GET
	// stands for the original request (usually a POST). Checking its
	// headers with its method keeps other sites from driving the upload
	// API with the user's cookie.
	if m := r.Header.Get("X-Forwarded-Method"); m != "" {
		orig := r.WithContext(r.Context())
		orig.Method = m
		if err := s.cop.Check(orig); err != nil {
			writeError(w, http.StatusForbidden, "cross_origin", "cross-origin request refused")
			return
		}
	}
	user, ok := s.userOf(r)
	if !ok && publicUploadAsset(r) {
		// The plugin's client script is public, so the page (which imports
		// it) works before logging in; the upload API itself stays closed.
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	if !ok {
		writeError(w, http.StatusUnauthorized, "unauthenticated", "log in first")
		return
	}
	w.Header().Set("X-User-Id", user)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// publicUploadAsset reports whether a forward_auth question is about a GET
// of the plugin's client script (/uploads/direct-upload.js or its .d.ts).
func publicUploadAsset(r *http.Request) bool {
	m := r.Header.Get("X-Forwarded-Method")
	if m != http.MethodGet && m != http.MethodHead {
		return false
	}
	u, err := url.ParseRequestURI(r.Header.Get("X-Forwarded-Uri"))
	if err != nil {
		return false
	}
	return u.Path == "/uploads/direct-upload.js" || u.Path == "/uploads/direct-upload.d.ts"
}

// --- webhooks ---------------------------------------------------------------

// event is one webhook delivery as received.
type event struct {
	ReceivedAt       time.Time `json:"received_at"`
	WebhookID        string    `json:"webhook_id,omitempty"`
	WebhookTimestamp string    `json:"webhook_timestamp,omitempty"`
	WebhookSignature string    `json:"webhook_signature,omitempty"`
	// Verified tells whether the signature was checked and matched; it is
	// false for every event when WEBHOOK_SECRET is unset.
	Verified bool `json:"verified"`
	// DuplicateDeliveries counts the later deliveries of the same
	// webhook-id (the plugin's retries), which were answered but not
	// stored again.
	DuplicateDeliveries int `json:"duplicate_deliveries"`
	// Message is what the backend answered, for the upload page.
	Message string          `json:"message"`
	Payload json.RawMessage `json:"payload"`
}

// seenWebhook is what is remembered of a webhook-id.
type seenWebhook struct {
	message string
	ev      *event // nil once the event has left the ring
}

// eventRing keeps the last webhookRingLen events, and the webhook ids of
// the last maxSeenWebhookIDs events so retries are stored only once.
type eventRing struct {
	mu   sync.Mutex
	buf  [webhookRingLen]*event
	next int // index the next event goes to
	n    int // events held, at most len(buf)

	seen     map[string]*seenWebhook
	seenIDs  [maxSeenWebhookIDs]string // ring of the ids in seen
	seenNext int                       // index the next id goes to
}

func newEventRing() *eventRing {
	return &eventRing{seen: make(map[string]*seenWebhook)}
}

// record stores ev unless an event with its webhook-id was recorded
// before; then it counts a duplicate delivery and returns the message the
// first delivery was answered with. Events without a webhook-id are always
// stored.
func (e *eventRing) record(ev event) (message string, duplicate bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ev.WebhookID != "" {
		if sw, ok := e.seen[ev.WebhookID]; ok {
			if sw.ev != nil {
				sw.ev.DuplicateDeliveries++
			}
			return sw.message, true
		}
	}

	stored := &ev
	if old := e.buf[e.next]; old != nil && old.WebhookID != "" {
		if sw, ok := e.seen[old.WebhookID]; ok && sw.ev == old {
			sw.ev = nil // keep the id and message, not the payload
		}
	}
	e.buf[e.next] = stored
	e.next = (e.next + 1) % len(e.buf)
	if e.n < len(e.buf) {
		e.n++
	}

	if ev.WebhookID != "" {
		if oldID := e.seenIDs[e.seenNext]; oldID != "" {
			delete(e.seen, oldID)
		}
		e.seenIDs[e.seenNext] = ev.WebhookID
		e.seenNext = (e.seenNext + 1) % len(e.seenIDs)
		e.seen[ev.WebhookID] = &seenWebhook{message: ev.Message, ev: stored}
	}
	return ev.Message, false
}

// newestFirst returns a copy of the held events, newest first.
func (e *eventRing) newestFirst() []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]event, 0, e.n)
	for i := 1; i <= e.n; i++ {
		out = append(out, *e.buf[(e.next-i+len(e.buf))%len(e.buf)])
	}
	return out
}

// webhookPayload is the part of an event body the backend reads.
type webhookPayload struct {
	Type string `json:"type"`
	Data struct {
		ID       string `json:"id"`
		Key      string `json:"key"`
		Size     int64  `json:"size"`
		Filename string `json:"filename"`
		Identity string `json:"identity"`
		Reason   string `json:"reason"`
		Detail   string `json:"detail"`
	} `json:"data"`
}

// describeEvent is the one-line summary the backend answers with; the
// plugin may show it to the uploading user.
func describeEvent(p webhookPayload) string {
	d := p.Data
	name := d.Filename
	if name == "" {
		name = d.Key
	}
	if name == "" {
		name = d.ID
	}
	if utf8.RuneCountInString(name) > maxMessageName {
		name = string([]rune(name)[:maxMessageName-1]) + "…"
	}
	reason := func(fallback string) string {
		switch {
		case d.Reason != "":
			return d.Reason
		case d.Detail != "":
			return d.Detail
		}
		return fallback
	}
	switch p.Type {
	case "upload.completed":
		who := d.Identity
		if who == "" {
			who = "someone"
		}
		if d.Size > 0 {
			return fmt.Sprintf("%s uploaded %s (%s)", who, name, humanize.IBytes(uint64(d.Size)))
		}
		return fmt.Sprintf("%s uploaded %s", who, name)
	case "upload.rejected":
		return "rejected: " + reason("no reason given")
	case "upload.failed":
		return "failed: " + reason("no reason given")
	case "upload.expired":
		return "expired: " + name + " was never completed"
	case "":
		return "received an event without a type"
	}
	return "received " + p.Type
}

// verifyFailure turns a verification error into the message answered.
func verifyFailure(err error) string {
	switch {
	case errors.Is(err, standardwebhooks.ErrRequiredHeaders):
		return "webhook-id, webhook-timestamp and webhook-signature are required"
	case errors.Is(err, standardwebhooks.ErrInvalidHeaders):
		return "webhook-timestamp must be Unix seconds"
	case errors.Is(err, standardwebhooks.ErrMessageTooOld), errors.Is(err, standardwebhooks.ErrMessageTooNew):
		return "webhook-timestamp is more than 5 minutes away from now"
	}
	return "no webhook-signature matches the body"
}

// receiveWebhook stores an event the plugin sent and answers with a short
// summary, {"ok":true,"message":...}; the plugin may pass that answer on
// to the upload page.
//
// With WEBHOOK_SECRET set, the Standard Webhooks signature is verified
// against the raw body (any v1 signature may match, so secrets can be
// rotated; the timestamp must be within 5 minutes of now) and a failure is
// answered 401 bad_signature. Without it, events are accepted and stored
// as "verified": false; nothing here acts on the events, they are only
// displayed. Either way a webhook-id already received is answered 200
// again with the same message but not stored twice: the plugin retries an
// event with the same id until it sees a 2xx.
func (s *server) receiveWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		writeBodyError(w, err)
		return
	}
	verified := false
	if s.wh != nil {
		if err := s.wh.Verify(body, r.Header); err != nil {
			msg := verifyFailure(err)
			log.Printf("webhook %q refused: %s", r.Header.Get(standardwebhooks.HeaderWebhookID), msg)
			writeError(w, http.StatusUnauthorized, "bad_signature", "the webhook could not be verified: "+msg)
			return
		}
		verified = true
	}
	var p webhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_json", "the body is not a JSON event")
		return
	}
	message := describeEvent(p)
	if !verified {
		message += " (signature not checked)"
	}
	message, duplicate := s.events.record(event{
		ReceivedAt:       time.Now().UTC(),
		WebhookID:        r.Header.Get(standardwebhooks.HeaderWebhookID),
		WebhookTimestamp: r.Header.Get(standardwebhooks.HeaderWebhookTimestamp),
		WebhookSignature: r.Header.Get(standardwebhooks.HeaderWebhookSignature),
		Verified:         verified,
		Message:          message,
		Payload:          json.RawMessage(body),
	})
	answer := struct {
		OK        bool   `json:"ok"`
		Message   string `json:"message"`
		Duplicate bool   `json:"duplicate,omitempty"`
	}{true, message, duplicate}
	writeJSON(w, http.StatusOK, answer)
}

// listWebhooks shows the received events. It is open to anyone who can
// reach the backend, which is fine for a demo on 127.0.0.1 only.
func (s *server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.events.newestFirst())
}

// --- helpers ----------------------------------------------------------------

func mediaType(header string) string {
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return ""
	}
	return mt
}

// acceptsJSON reports whether the Accept header lists application/json.
func acceptsJSON(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mediaType(strings.TrimSpace(part)) == "application/json" {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Printf("writing JSON: %v", err)
	}
}

// writeError answers {"error":{"code","message"}}, the shape the plugin
// uses too, so the page handles both alike.
func writeError(w http.ResponseWriter, status int, code, message string) {
	type errorBody struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	writeJSON(w, status, struct {
		Error errorBody `json:"error"`
	}{errorBody{code, message}})
}

// writeBodyError answers a request whose body could not be read or parsed.
func writeBodyError(w http.ResponseWriter, err error) {
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
			"the body must be at most "+strconv.FormatInt(mbe.Limit, 10)+" bytes")
		return
	}
	writeError(w, http.StatusBadRequest, "invalid_body", "the body could not be parsed")
}

// --- request log ------------------------------------------------------------

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs one line per request to stderr: method, path, status.
func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		// The escaped path cannot hold line breaks that would forge log lines.
		log.Printf("%s %s %d %s", r.Method, r.URL.EscapedPath(), rec.status, time.Since(start).Round(time.Microsecond))
	})
}
