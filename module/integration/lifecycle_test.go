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
//
// The example limits grants per user (docs/quotas.md), and these clients
// ask as fast as they can: a 429 from the limits is an answer, not a
// failure; each grant is failed right away so that pending grants do not
// pile up. They ask as bob, so that alice's limits are left to the other
// tests.
func TestReloadWhileServing(t *testing.T) {
	bob := login(t, "bob")
	before := grant(t, bob, map[string]any{"content_type": "image/png"})

	var stop atomic.Bool
	var ok, limited, bad, dropped atomic.Int64
	var firstBad atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				req, _ := http.NewRequest("POST", exampleURL+"/uploads", strings.NewReader(`{"content_type":"image/webp"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(bob[0], bob[1])
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
				var body struct {
					ID    string `json:"id"`
					Error struct {
						Code string `json:"code"`
					} `json:"error"`
				}
				_ = jsonUnmarshal(raw, &body)
				switch {
				case resp.StatusCode == 201:
					ok.Add(1)
					req, _ := http.NewRequest("POST", exampleURL+"/uploads/"+body.ID+"/fail", strings.NewReader(`{}`))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set(bob[0], bob[1])
					if resp, err := http.DefaultClient.Do(req); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				case resp.StatusCode == 429 && (body.Error.Code == "rate_limited" || body.Error.Code == "quota_exceeded"):
					limited.Add(1)
				default:
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
	if r := call(t, "POST", exampleURL+"/uploads/"+before.str("id")+"/complete", nil, bob...); r.Status != 200 {
		t.Fatalf("intent from before the reloads: %d %s", r.Status, r.Raw)
	}
	t.Logf("%d grants served and %d refused by the example's limits during 5 reloads (%d idle connections closed under a client)",
		ok.Load(), limited.Load(), dropped.Load())
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
