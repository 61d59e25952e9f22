package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestValidateWhileRunning: `caddy validate` provisions every module but
// must not open the intent store, which the running Caddy holds locked.
func TestValidateWhileRunning(t *testing.T) {
	out, err := example.Run("validate", "--config", example.Config, "--adapter", "caddyfile")
	if err != nil || !strings.Contains(out, "Valid configuration") {
		t.Fatalf("validate failed: %v\n%s", err, out)
	}
	// And the running instance still works.
	grant(t, login(t, "alice"), map[string]any{"content_type": "image/png"})
}

// TestReloadWhileServing reloads the config repeatedly while clients keep
// asking for uploads: no request fails, and an intent granted before the
// reloads completes after them (the store is shared, not reopened).
func TestReloadWhileServing(t *testing.T) {
	alice := login(t, "alice")
	before := grant(t, alice, map[string]any{"content_type": "image/png"})

	var stop atomic.Bool
	var ok, bad, dropped atomic.Int64
	var firstBad atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				req, _ := http.NewRequest("POST", exampleURL+"/uploads", strings.NewReader(`{"content_type":"image/webp"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(alice[0], alice[1])
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					// A reload closes idle keep-alive connections; a client
					// racing that close sees a transport error and retries.
					// Only answers count.
					dropped.Add(1)
					continue
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 201 {
					ok.Add(1)
				} else {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, raw))
				}
			}
		}()
	}
	for i := 0; i < 5; i++ {
		out, err := example.Run("reload", "--config", example.Config,
			"--adapter", "caddyfile", "--address", example.AdminAddr, "--force")
		if err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("reload %d: %v\n%s", i, err, out)
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d requests succeeded, %d failed during reloads (first: %v)", ok.Load(), bad.Load(), firstBad.Load())
	}
	uploadForm(t, before, "image/png", pngFile(t))
	if r := call(t, "POST", exampleURL+"/uploads/"+before.str("id")+"/complete", nil, alice...); r.Status != 200 {
		t.Fatalf("intent from before the reloads: %d %s", r.Status, r.Raw)
	}
	t.Logf("%d grants served during 5 reloads (%d idle connections closed under a client)", ok.Load(), dropped.Load())
}

// TestConcurrentCompleteOverHTTP: many clients complete one upload at once;
// all see the same outcome.
func TestConcurrentCompleteOverHTTP(t *testing.T) {
	alice := login(t, "alice")
	g := grant(t, alice, map[string]any{"content_type": "image/png"})
	uploadForm(t, g, "image/png", pngFile(t))
	var wg sync.WaitGroup
	etags := make([]string, 10)
	for i := range etags {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := call(t, "POST", exampleURL+"/uploads/"+g.str("id")+"/complete", nil, alice...)
			if r.Status == 200 {
				etags[i] = r.str("etag")
			}
		}()
	}
	wg.Wait()
	for _, e := range etags {
		if e == "" || e != etags[0] {
			t.Fatalf("outcomes differ: %v", etags)
		}
	}
}
