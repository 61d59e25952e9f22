// Command receiver is an example webhook receiver for caddy-direct-upload,
// written with the Standard Webhooks Go library.
//
// It verifies each POST /webhooks/uploads against the raw body with the
// secret in WEBHOOK_SECRET ("whsec_" + base64, HMAC "v1" signatures) or
// the public keys in WEBHOOK_PUBLIC_KEY ("whpk_" + base64, space-separated,
// Ed25519 "v1a" signatures), or both; it rejects missing headers,
// bad signatures and timestamps more than 5 minutes off, remembers the last
// 10,000 webhook ids so a retried event is processed only once, and prints
// one JSON line per new verified event to stdout:
//
//	{"webhook_id":"evt_…","type":"upload.completed","intent_id":"01m8…","status":"completed"}
//
// Usage:
//
//	WEBHOOK_SECRET=whsec_… go run ./examples/receivers/go -addr 127.0.0.1:9101
//
// The address comes from -addr, else from RECEIVER_ADDR, else
// 127.0.0.1:9101. Port 0 picks a free port; the address actually used is
// logged to stderr as "listening on http://HOST:PORT".
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const (
	maxBody    = 64 << 10 // bytes; the plugin's bodies are < 20 KB
	maxSeenIDs = 10000    // webhook ids remembered for deduplication
)

func main() {
	defAddr := os.Getenv("RECEIVER_ADDR")
	if defAddr == "" {
		defAddr = "127.0.0.1:9101"
	}
	addr := flag.String("addr", defAddr, "listen address (env RECEIVER_ADDR)")
	flag.Parse()
	log.SetPrefix("receiver: ")

	pubs, err := parsePublicKeys(os.Getenv("WEBHOOK_PUBLIC_KEY"))
	if err != nil {
		log.Fatalf("WEBHOOK_PUBLIC_KEY: %v", err)
	}
	secret := os.Getenv("WEBHOOK_SECRET")
	var wh *standardwebhooks.Webhook
	switch {
	case secret == "" && len(pubs) > 0:
		// Ed25519 only.
	case !strings.HasPrefix(secret, "whsec_"):
		log.Fatal("WEBHOOK_SECRET must be set to the endpoint's secret, whsec_ followed by base64 (or WEBHOOK_PUBLIC_KEY to whpk_…)")
	case secret == "whsec_":
		log.Fatal("WEBHOOK_SECRET: the key after whsec_ is empty")
	default:
		if wh, err = standardwebhooks.NewWebhook(secret); err != nil {
			log.Fatalf("WEBHOOK_SECRET: %v", err)
		}
	}

	rc := &receiver{wh: wh, pubs: pubs, seen: newIDSet(maxSeenIDs), out: json.NewEncoder(os.Stdout)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/uploads", rc.receive)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("listening on http://%s", ln.Addr())

	select {
	case err := <-errc:
		log.Fatal(err)
	case <-ctx.Done():
	}
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Printf("shutdown: %v", err)
	}
}

// receiver handles the webhook endpoint.
type receiver struct {
	wh   *standardwebhooks.Webhook // nil without WEBHOOK_SECRET
	pubs []ed25519.PublicKey
	seen *idSet

	outMu sync.Mutex
	out   *json.Encoder
}

// payload is the part of the event body this receiver uses.
type payload struct {
	Type string `json:"type"`
	Data struct {
		ID       string `json:"id"`
		Status   string `json:"status"`
		Filename string `json:"filename"`
		Identity string `json:"identity"`
		Reason   string `json:"reason"`
	} `json:"data"`
}

func (rc *receiver) receive(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body must be at most %d bytes", maxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_body", "the body could not be read")
		return
	}

	id := r.Header.Get(standardwebhooks.HeaderWebhookID)
	if id == "" || r.Header.Get(standardwebhooks.HeaderWebhookTimestamp) == "" ||
		r.Header.Get(standardwebhooks.HeaderWebhookSignature) == "" {
		writeError(w, http.StatusBadRequest, "missing_headers",
			"webhook-id, webhook-timestamp and webhook-signature are required")
		return
	}
	if err := rc.verify(body, r.Header); err != nil {
		log.Printf("rejected webhook %q: %s", id, strings.ReplaceAll(err.Error(), "\n", "; "))
		writeError(w, http.StatusUnauthorized, "bad_signature", "the webhook signature could not be verified")
		return
	}

	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_json", "the body is not a JSON event")
		return
	}

	// Only verified ids are remembered, so forged requests cannot make a
	// real event look like a duplicate.
	if !rc.seen.add(id) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "duplicate": true, "message": "already received " + id})
		return
	}

	rc.outMu.Lock()
	err = rc.out.Encode(struct {
		WebhookID string `json:"webhook_id"`
		Type      string `json:"type"`
		IntentID  string `json:"intent_id"`
		Status    string `json:"status"`
	}{id, p.Type, p.Data.ID, p.Data.Status})
	rc.outMu.Unlock()
	if err != nil {
		log.Printf("writing event: %v", err)
	}

	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "message": describe(p)})
}

// verify accepts a delivery with a valid v1 signature by the secret or a
// valid v1a signature by one of the public keys, and a timestamp within 5
// minutes.
func (rc *receiver) verify(body []byte, h http.Header) error {
	var errs []error
	if rc.wh != nil {
		// Verify checks the timestamp (±5 minutes) and compares every v1
		// signature in constant time against the raw body.
		err := rc.wh.Verify(body, h)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	if len(rc.pubs) > 0 {
		err := verifyV1a(rc.pubs, body, h)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// describe is the short text the plugin may show the uploading user.
func describe(p payload) string {
	name := p.Data.Filename
	if name == "" {
		name = p.Data.ID
	}
	who := p.Data.Identity
	if who == "" {
		who = "anonymous"
	}
	switch p.Type {
	case "upload.completed":
		return "stored " + name + " for " + who
	case "upload.rejected", "upload.failed":
		reason := p.Data.Reason
		if reason == "" {
			reason = "no reason given"
		}
		return strings.TrimPrefix(p.Type, "upload.") + ": " + reason
	case "upload.expired":
		return "expired: " + name
	default:
		return "received " + p.Type
	}
}

// idSet remembers the last max ids added.
type idSet struct {
	mu    sync.Mutex
	ids   map[string]struct{}
	order []string // ring of the ids in ids, oldest at next once full
	next  int
}

func newIDSet(max int) *idSet {
	return &idSet{ids: make(map[string]struct{}, max), order: make([]string, 0, max)}
}

// add records id and reports whether it was new.
func (s *idSet) add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[id]; ok {
		return false
	}
	if len(s.order) < cap(s.order) {
		s.order = append(s.order, id)
	} else {
		delete(s.ids, s.order[s.next])
		s.order[s.next] = id
		s.next = (s.next + 1) % len(s.order)
	}
	s.ids[id] = struct{}{}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Printf("writing response: %v", err)
	}
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}
