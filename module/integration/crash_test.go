package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// crashClient has a bound on every request: a request to a process that
// was just killed fails fast (connection refused or reset) and is simply
// not acknowledged.
var crashClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// tryCall sends a JSON request and returns the status and decoded body, or an
// error when no answer came (the process died under it).
func tryCall(method, url string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(carol[0], carol[1])
	resp, err := crashClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, nil
}

// crashLedger is what the server acknowledged to the clients.
type crashLedger struct {
	mu        sync.Mutex
	granted   []string
	completed []string
	failed    []string
	acked     atomic.Int64 // acknowledged operations, to see progress
}

func (l *crashLedger) add(list *[]string, id string) {
	l.mu.Lock()
	*list = append(*list, id)
	l.mu.Unlock()
	l.acked.Add(1)
}

// TestCrashLoop kills Caddy with SIGKILL at least 30 times while clients
// stream grants, uploads, completes and fails, some of the kills while the
// process is still starting (opening its store), then checks after a
// final restart: every acknowledged grant is readable, every acknowledged
// complete is completed with exactly one upload.completed event delivered
// (distinct webhook-id), every acknowledged fail is failed with exactly
// one upload.failed event.
func TestCrashLoop(t *testing.T) {
	const cycles = 32
	rc := newHookReceiver(t)
	h := newHooks(t, rc.srv.URL)
	img := pngFile(t)
	led := &crashLedger{}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				status, g, err := tryCall("POST", h.url, map[string]any{"content_type": "image/png", "filename": "c.png"})
				if err != nil || status != 201 {
					// Down or starting: back off a little, bounded.
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				id, _ := g["id"].(string)
				led.add(&led.granted, id)
				if (w+i)%3 == 0 {
					if s, _, err := tryCall("POST", h.url+"/"+id+"/fail", map[string]string{"reason": "cancelled"}); err == nil && s == 200 {
						led.add(&led.failed, id)
					}
					continue
				}
				fields := map[string]string{}
				f, _ := g["fields"].(map[string]any)
				for k, v := range f {
					fields[k], _ = v.(string)
				}
				url, _ := g["url"].(string)
				if s, _, err := testkit.PostForm(url, fields, "image/png", img); err != nil || s != 201 {
					continue
				}
				if s, _, err := tryCall("POST", h.url+"/"+id+"/complete", nil); err == nil && s == 200 {
					led.add(&led.completed, id)
				}
			}
		}()
	}

	early, earlyBeforeOpen := 0, 0
	for c := 0; c < cycles; c++ {
		// Let the clients make progress on this process, then kill it
		// at a random moment.
		before := led.acked.Load()
		waitFor(t, "progress before a kill", 30*time.Second, func() bool { return led.acked.Load() >= before+3 })
		time.Sleep(time.Duration(rand.IntN(80)) * time.Millisecond)
		h.Kill()
		if c%2 == 1 {
			// Kill the next process while it starts: once its admin
			// endpoint is up, Caddy loads the config, which opens the
			// store (replaying it) and logs "intent store open".
			p, err := testkit.StartCaddyNoWait(h.cf, h.admin, h.env)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the admin endpoint to start", 20*time.Second, func() bool {
				return strings.Contains(p.Output(), "admin endpoint started") || p.Exited()
			})
			time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
			p.Kill()
			if !strings.Contains(p.Output(), "intent store open") {
				earlyBeforeOpen++
			}
			early++
		}
		restartKilled(t, h)
	}
	cancel()
	wg.Wait()
	// The final restart: nothing is left of the processes the loop killed.
	h.Kill()
	restartKilled(t, h)

	led.mu.Lock()
	granted, completed, failed := led.granted, led.completed, led.failed
	led.mu.Unlock()
	if len(completed) < cycles/4 || len(failed) < cycles/4 {
		t.Fatalf("too little traffic to mean anything: %d completes, %d fails", len(completed), len(failed))
	}

	statusOf := map[string]string{}
	for _, id := range granted {
		s, body, err := tryCall("GET", h.url+"/"+id, nil)
		if err != nil || s != 200 {
			t.Fatalf("acknowledged grant %s not readable after restart: %d %v %v", id, s, err, body)
		}
		statusOf[id], _ = body["status"].(string)
	}
	for _, id := range completed {
		if statusOf[id] != "completed" {
			t.Fatalf("acknowledged complete %s is %q", id, statusOf[id])
		}
	}
	for _, id := range failed {
		if statusOf[id] != "failed" {
			t.Fatalf("acknowledged fail %s is %q", id, statusOf[id])
		}
	}
	// Every finalized intent (acknowledged or not: a kill may cut the
	// answer after the commit) has its one event; pending ones none.
	final := 0
	for _, s := range statusOf {
		if s != "pending" {
			final++
		}
	}
	waitFor(t, "every event delivered", 60*time.Second, func() bool {
		got := rc.byIntent()
		for id, s := range statusOf {
			if s != "pending" && len(got[id]) == 0 {
				return false
			}
		}
		return true
	})
	got := rc.byIntent()
	for id, s := range statusOf {
		evs := got[id]
		if s == "pending" {
			if len(evs) != 0 {
				t.Fatalf("pending intent %s has events: %v", id, evs)
			}
			continue
		}
		if len(evs) != 1 {
			t.Fatalf("%s (%s): %d distinct events, want exactly 1: %v", id, s, len(evs), evs)
		}
		for _, d := range evs {
			if d.Type != "upload."+s {
				t.Fatalf("%s is %s but its event is %s", id, s, d.Type)
			}
		}
	}
	events := 0
	for _, evs := range got {
		events += len(evs)
	}
	dups := len(rc.deliveries()) - events
	if rc.bad != 0 {
		t.Fatalf("%d deliveries failed signature verification", rc.bad)
	}
	summary := fmt.Sprintf("crash loop: %d kill -9 cycles (%d more while starting, %d of them before the store had finished opening), %d grants, %d completes, %d fails acknowledged; %d intents finalized, %d events (one per finalized intent), %d duplicate deliveries (same webhook-id, at-least-once)",
		cycles, early, earlyBeforeOpen, len(granted), len(completed), len(failed), final, events, dups)
	t.Log(summary)
	fmt.Println(summary)
	reportFaultMatrix(t, "crash-loop", summary)
}

// restartKilled starts the killed Caddy again on its store; when it cannot, the
// store's files are listed for the diagnosis.
func restartKilled(t *testing.T, h *hooks) {
	t.Helper()
	c, err := testkit.StartCaddy(h.cf, h.admin, h.env)
	if err != nil {
		dir := filepath.Join(filepath.Dir(h.cf), "intents")
		entries, _ := os.ReadDir(dir)
		var files []string
		for _, e := range entries {
			if fi, err := e.Info(); err == nil {
				files = append(files, fmt.Sprintf("%s:%d", e.Name(), fi.Size()))
			}
		}
		t.Fatalf("restart after kill -9: %v\nstore files: %v", err, files)
	}
	h.Caddy = c
}

// reportFaultMatrix writes a matrix row's counts to $FAULT_MATRIX_DIR/name.txt
// when the Makefile sets it, so `make test` can print them (go test hides
// a passing package's output).
func reportFaultMatrix(t testing.TB, name, line string) {
	dir := os.Getenv("FAULT_MATRIX_DIR")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
