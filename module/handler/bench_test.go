package handler

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

const benchBody = `{"filename":"photo.png","content_type":"image/png","size":123456,"metadata":{"album":"holidays"}}`

// BenchmarkGrantHandler is a whole grant as the handler serves it: the
// JSON body decoded, validation, key, policy, the intent group-committed
// to a synced Badger on disk, and the JSON answer, with 32 concurrent
// requests as a loaded server sees them. Only Caddy's routing and
// net/http are outside it. allocs/op is the allocations per grant; the
// "harness" sub-benchmark is the test's own request and recorder (with a
// body of a grant's length), to subtract.
func BenchmarkGrantHandler(b *testing.B) {
	objs, err := bucket.New(context.Background(), bucket.Config{
		Bucket: "uploads", Region: "us-east-1", Endpoint: "http://127.0.0.1:1", PathStyle: true,
		AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret",
	})
	if err != nil {
		b.Fatal(err)
	}
	key, _ := upload.ParseKeyTemplate(DefaultKey)
	p := &upload.Profile{Name: "bench", Objects: objs, Key: key, MaxSize: 10 << 20, Expires: 5 * time.Minute, MaxMetadata: 4096,
		Allowed: map[string]sniff.Type{"image/png": sniff.TypeOf("image/png")}}
	db, err := store.OpenBadger(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	svc := upload.NewService(db, zap.NewNop())
	h := &Handler{MaxMetadata: 4096, profile: p, logger: zap.NewNop()}
	run := func(b *testing.B, serve func(w http.ResponseWriter, r *http.Request)) {
		b.ReportAllocs()
		// CPU time per grant (the process's, all goroutines), which a
		// loaded machine distorts less than wall time: an fsync waited
		// for costs none.
		cpu0 := cpuTime()
		defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op") }()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r := httptest.NewRequest(http.MethodPost, "/upload/", strings.NewReader(benchBody))
				r.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				serve(w, r)
				if w.Code != http.StatusCreated {
					b.Errorf("status %d: %s", w.Code, w.Body)
					return
				}
			}
		})
	}
	// The harness answers a body as long as a grant's: the recorder's
	// buffer for it is the test's cost, not the handler's (net/http
	// writes into a pooled buffer).
	probe, pr := httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/upload/", strings.NewReader(benchBody))
	pr.Header.Set("Content-Type", "application/json")
	h.create(probe, pr, svc, "alice")
	if probe.Code != http.StatusCreated {
		b.Fatalf("status %d: %s", probe.Code, probe.Body)
	}
	answer := make([]byte, probe.Body.Len())
	b.Run("harness", func(b *testing.B) {
		run(b, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(answer)
		})
	})
	b.Run("grant", func(b *testing.B) {
		run(b, func(w http.ResponseWriter, r *http.Request) { h.create(w, r, svc, "alice") })
	})
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
