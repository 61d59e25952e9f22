package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkSign: the v1 signature of one attempt (one secret), the part of
// a send that is the dispatcher's own.
func BenchmarkSign(b *testing.B) {
	secrets := []Secret{must(ParseSecret(secretA))}
	body := make([]byte, 700)
	ts := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = Sign(secrets, "evt_01jd5m3y4c8k2q7r9t0v", ts, body)
	}
}

// TestSignWithPooledMACs: signatures made one after another, and at once
// from several goroutines, with MAC states taken from the pools, are the
// ones a fresh HMAC gives (a state not reset would carry the previous
// message into the next signature).
func TestSignWithPooledMACs(t *testing.T) {
	a, b := mustSecret(t, secretA), mustSecret(t, secretB)
	fresh := func(s Secret, msg string) string {
		m := hmac.New(sha256.New, s)
		m.Write([]byte(msg))
		return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	ts := time.Unix(1_800_000_000, 0)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id, body := fmt.Sprintf("evt_%d_%d", g, i), []byte(strings.Repeat("x", i))
				msg := id + ".1800000000." + string(body)
				if got, want := Sign([]Secret{a, b}, id, ts, body), fresh(a, msg)+" "+fresh(b, msg); got != want {
					errs <- fmt.Sprintf("%s: got %s, want %s", id, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := Sign(nil, "x", ts, nil); got != "" {
		t.Errorf("no secrets: %q", got)
	}
}
