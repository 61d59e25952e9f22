package app

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

// sweepWorkers is the sweeper's concurrency (newSweeper's), which the bare
// S3 baseline uses too.
const sweepWorkers = 8

// BenchmarkSweep100k settles 100,000 expired intents whose uploads never
// came, and measures against the S3 calls the sweep must make for them,
// in the same run, on the same versitygw, with the same concurrency:
//
//   - bare-s3: the ranged GET that finds each intent's object absent (what
//     the sweep's verification asks S3), made directly through the SDK
//     client with sweepWorkers goroutines; intents/s.
//   - bare-s3-lean: the same calls made as the sweep makes them
//     (bucket.Absent: signed here, no SDK middleware), the stricter
//     baseline; intents/s.
//   - sweep: one pass of the sweeper over a store holding the intents
//     (each one's S3 look and its synced transition with its event);
//     intents/s, the peak Go heap in use (sampled every 50 ms), and the
//     bytes and allocations of the whole process during the pass per
//     intent; vs-bare-s3 and vs-bare-s3-lean are its rate over theirs
//     when they ran.
//
// DIRECT_UPLOAD_SWEEP_N changes the count.
func BenchmarkSweep100k(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("DIRECT_UPLOAD_SWEEP_N")); err == nil && v > 0 {
		n = v
	}
	s3, err := testkit.StartVersity(b.TempDir(), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer s3.Stop(5 * time.Second)
	if err := s3.CreateBucket(context.Background(), "uploads"); err != nil {
		b.Fatal(err)
	}
	objs, err := bucket.New(context.Background(), bucket.Config{Bucket: "uploads", Region: s3.Region, Endpoint: s3.URL,
		PathStyle: true, AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	key, _ := upload.ParseKeyTemplate("bench/{id}{ext}")
	profile := &upload.Profile{Name: "bench", Objects: objs, Key: key, MaxSize: 1 << 20, Expires: time.Minute,
		MaxMetadata: 1024, Allowed: map[string]sniff.Type{"image/png": sniff.TypeOf("image/png")}, OnExpiry: upload.OnExpiryFinalize}

	// DIRECT_UPLOAD_SWEEP_HEAPPROF names a file the heap profile is
	// written to at each new peak of the sweep.
	heapProf := os.Getenv("DIRECT_UPLOAD_SWEEP_HEAPPROF")
	var bareRate float64
	b.Run("bare-s3", func(b *testing.B) {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("bench/%s.png", upload.NewID())
		}
		for b.Loop() {
			start := time.Now()
			concurrently(b, n, func(i int) error {
				_, _, err := objs.Inspect(context.Background(), keys[i], sniff.DimsLen)
				if err != bucket.ErrNotFound {
					return fmt.Errorf("ranged get of an absent object: %v", err)
				}
				return nil
			})
			bareRate = float64(n) / time.Since(start).Seconds()
			b.ReportMetric(bareRate, "intents/s")
		}
	})

	var leanRate float64
	b.Run("bare-s3-lean", func(b *testing.B) {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("bench/%s.png", upload.NewID())
		}
		for b.Loop() {
			start := time.Now()
			concurrently(b, n, func(i int) error {
				if absent, err := objs.Absent(context.Background(), keys[i]); err != nil || !absent {
					return fmt.Errorf("lean ranged get of an absent object: %v, %v", absent, err)
				}
				return nil
			})
			leanRate = float64(n) / time.Since(start).Seconds()
			b.ReportMetric(leanRate, "intents/s")
		}
	})

	b.Run("sweep", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			dir := b.TempDir()
			load(b, dir, n)
			db, err := store.OpenBadger(dir, nil)
			if err != nil {
				b.Fatal(err)
			}
			c := &core{db: db}
			c.disp = &webhook.Dispatcher{Store: db, Endpoints: func(string) (*webhook.Endpoint, webhook.Lookup) { return nil, webhook.NoConfig }}
			// (A retention of 1<<62 would list every finished intent as
			// due: the sweep would prune what it just expired.)
			a := &App{SweepInterval: 1 << 62, ExpiryGrace: 0, Retention: caddy.Duration(24 * time.Hour), profiles: map[string]*upload.Profile{"bench": profile}}
			svc := upload.NewService(db, zap.NewNop())
			svc.Grace = 0
			a.service.Store(svc)
			a.core = c
			c.apps = []*App{a}
			sw := &sweeper{c: c, workers: sweepWorkers}
			sw.ctx, sw.cancel = context.WithCancel(context.Background())

			var peak, peakLive atomic.Uint64
			stopSampling := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ms runtime.MemStats
				live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
				for {
					runtime.ReadMemStats(&ms)
					// The live heap the last collection found: what the
					// peak holds, without the garbage not collected yet.
					if metrics.Read(live); live[0].Value.Uint64() > peakLive.Load() {
						peakLive.Store(live[0].Value.Uint64())
					}
					if ms.HeapInuse > peak.Load() {
						peak.Store(ms.HeapInuse)
						if heapProf != "" { // what is live at the peak
							if f, err := os.Create(heapProf); err == nil {
								pprof.Lookup("heap").WriteTo(f, 0)
								f.Close()
							}
						}
					}
					select {
					case <-stopSampling:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.StartTimer()
			start := time.Now()
			st := sw.sweep()
			elapsed := time.Since(start)
			b.StopTimer()
			runtime.ReadMemStats(&after)
			close(stopSampling)
			wg.Wait()
			if st.Settled != n {
				b.Fatalf("settled %d of %d (%+v)", st.Settled, n, st)
			}
			rate := float64(n) / elapsed.Seconds()
			b.ReportMetric(rate, "intents/s")
			b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(peakLive.Load())/(1<<20), "peak-live-MiB")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(n), "B/intent")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(n), "allocs/intent")
			if bareRate > 0 {
				b.ReportMetric(rate/bareRate, "vs-bare-s3")
			}
			if leanRate > 0 {
				b.ReportMetric(rate/leanRate, "vs-bare-s3-lean")
			}
			db.Close()
			// The tables on disk after the sweep (what compression saves).
			var sst int64
			filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err == nil && strings.HasSuffix(path, ".sst") {
					if fi, err := d.Info(); err == nil {
						sst += fi.Size()
					}
				}
				return nil
			})
			b.ReportMetric(float64(sst)/float64(n), "sst-B/intent")
			b.StartTimer()
		}
	})
}

// concurrently runs fn(0..n-1) on sweepWorkers goroutines and fails b on
// the first error.
func concurrently(b *testing.B, n int, fn func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for w := 0; w < sweepWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || failed.Load() != nil {
					return
				}
				if err := fn(i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
}

// load writes n pending intents that expired an hour ago.
func load(b *testing.B, dir string, n int) {
	db, err := store.OpenBadgerUnsynced(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	past := time.Now().Add(-time.Hour).UTC()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				id := upload.NewID()
				in := &store.Intent{ID: id, Profile: "bench", Bucket: "uploads", Key: fmt.Sprintf("bench/%s.png", id),
					ContentType: "image/png", MaxSize: 1 << 20, Status: store.StatusPending,
					CreatedAt: past.Add(-time.Minute), ExpiresAt: past, UpdatedAt: past}
				if err := db.Create(context.Background(), in); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
