package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

var (
	scaleSizes = flag.String("scale", "1k,100k,1M", "stored intents for the scale curve, comma-separated (k, M suffixes; empty: skip it)")
	scaleDisk  = flag.Int("scale-disk", 20_000, "settled intents for the disk measure before and after pruning (0: skip it)")
)

// ScalePoint is the grant rate with n intents already in the store.
type ScalePoint struct {
	Stored int `json:"stored_intents"`
	// LoadSecs is how long writing them (unsynced, through the store)
	// took; OpenSecs how long Caddy took to start on them.
	LoadSecs float64 `json:"load_seconds"`
	OpenSecs float64 `json:"caddy_start_seconds"`
	// SettleSecs is how long Caddy took to go idle on them (compactions).
	SettleSecs float64 `json:"caddy_idle_after_seconds"`
	Rounds     []Round `json:"rounds"`
	// Best is the round with the most grants/s.
	Best Round `json:"best"`
}

// DiskMeasure is the store's disk use for settled intents, then once they
// are pruned and the value log collected, then after as many new intents
// again (the traffic whose compactions drop the pruned records), against a
// fresh store holding only those.
type DiskMeasure struct {
	Settled             int     `json:"settled_intents"`
	BytesPerSettled     float64 `json:"bytes_per_settled_intent"`
	BytesAfterPrune     int64   `json:"bytes_after_prune_and_gc"`
	BytesAfterTraffic   int64   `json:"bytes_after_prune_gc_and_new_traffic"`
	BytesFreshTraffic   int64   `json:"bytes_of_a_fresh_store_with_that_traffic"`
	ResiduePerPruned    float64 `json:"residue_bytes_per_pruned_intent"`
	ValueLogFilesGCed   int     `json:"value_log_files_rewritten"`
	BytesSettledTotal   int64   `json:"bytes_settled_total"`
	PendingAfterPruning int     `json:"new_pending_intents"`
}

// Scale is the scale curve and the disk measure.
type Scale struct {
	Points []ScalePoint `json:"points"`
	Disk   *DiskMeasure `json:"disk,omitempty"`
}

// measureScale runs the scale curve: for each size, a store of that many
// pending intents (expiring after the run, so the sweeper leaves them) is
// written directly through module/store and closed, and a Caddy is started
// on each; then the grant rounds of main (the same load and request) run
// against each Caddy in turn, twice (1k, 100k, 1M, 1k, 100k, 1M), so the
// machine's noise falls on every size alike.
func measureScale(s3srv *testkit.Versity, tmp string, conns int, d time.Duration) *Scale {
	sc := &Scale{}
	type target struct {
		caddy *testkit.Caddy
		grant func() (*http.Request, error)
	}
	var targets []target
	for _, f := range strings.Split(*scaleSizes, ",") {
		n, err := parseCount(f)
		if err != nil {
			log.Fatalf("-scale: %v", err)
		}
		if n == 0 {
			continue
		}
		dir := filepath.Join(tmp, fmt.Sprintf("scale-%d", n))
		defer os.RemoveAll(dir)
		p := ScalePoint{Stored: n}
		t0 := time.Now()
		db, err := store.OpenBadgerUnsynced(dir, nil)
		check(err)
		fill(db, n, 0, func(in *store.Intent) error { return nil })
		check(db.Close())
		p.LoadSecs = time.Since(t0).Seconds()
		t0 = time.Now()
		caddy, _, base := startBenchCaddy(s3srv, tmp, dir, fmt.Sprintf("scale-%d", n))
		defer caddy.Stop(10 * time.Second)
		p.OpenSecs = time.Since(t0).Seconds()
		// The store at rest: the compactions its fast load left are done
		// before it is measured (they would otherwise take the grant
		// rounds' CPU, the more so the larger the store).
		p.SettleSecs = waitIdle(caddy.Pid(), 2*time.Minute)
		log.Printf("scale: %d intents written in %.1f s, Caddy up on them in %.1f s, idle after %.0f s", n, p.LoadSecs, p.OpenSecs, p.SettleSecs)
		sc.Points = append(sc.Points, p)
		targets = append(targets, target{caddy, grantRequest(base)})
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns * 2, MaxConnsPerHost: conns * 2}}
	for _, t := range targets {
		load(client, t.grant, conns, time.Second, "warmup")
	}
	for round := 0; round < 2; round++ {
		for i, t := range targets {
			p := &sc.Points[i]
			cpu0 := cpuTime(t.caddy.Pid())
			r := load(client, t.grant, conns, d, fmt.Sprintf("presign, %d stored", p.Stored))
			if r.Requests > 0 {
				r.CaddyCPUus = float64((cpuTime(t.caddy.Pid()) - cpu0).Microseconds()) / float64(r.Requests)
			}
			p.Rounds = append(p.Rounds, r)
			if r.RPS > p.Best.RPS {
				p.Best = r
			}
			log.Printf("scale: %8d stored intents: %6.0f grants/s  p50 %6.2f ms  p99 %6.2f ms  Caddy CPU %5.1f us/grant",
				p.Stored, r.RPS, r.P50ms, r.P99ms, r.CaddyCPUus)
		}
	}
	if *scaleDisk > 0 {
		sc.Disk = measureDisk(filepath.Join(tmp, "scale-disk"), *scaleDisk)
	}
	return sc
}

func parseCount(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1000, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		mult, s = 1_000_000, strings.TrimSuffix(s, "M")
	}
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	return n * mult, err
}

// startBenchCaddy starts Caddy with main's Caddyfile on the store in dir.
func startBenchCaddy(s3srv *testkit.Versity, tmp, dir, name string, env ...string) (*testkit.Caddy, int, string) {
	site, _ := testkit.FreePort()
	admin, _ := testkit.FreePort()
	cf := filepath.Join(tmp, name+".Caddyfile")
	check(os.WriteFile(cf, []byte(strings.Replace(caddyfile, "CEILING_BODY", "`"+ceilingBody+"`", 1)), 0o644))
	caddy, err := testkit.StartCaddy(cf, fmt.Sprintf("127.0.0.1:%d", admin), append([]string{
		fmt.Sprintf("SITE_PORT=%d", site), fmt.Sprintf("ADMIN_PORT=%d", admin), "STORE_DIR=" + dir,
		"S3_ENDPOINT=" + s3srv.URL, "S3_ACCESS=" + s3srv.AccessKey, "S3_SECRET=" + s3srv.SecretKey,
		"XDG_DATA_HOME=" + filepath.Join(tmp, name+"-data"), "XDG_CONFIG_HOME=" + filepath.Join(tmp, name+"-config"),
	}, env...))
	check(err)
	return caddy, admin, fmt.Sprintf("http://127.0.0.1:%d", site)
}

// grantRequest is main's grant request against base.
func grantRequest(base string) func() (*http.Request, error) {
	return func() (*http.Request, error) {
		r, err := http.NewRequest("POST", base+"/uploads", strings.NewReader(`{"filename":"cat.png","content_type":"image/png","size":52311,"metadata":{"album":"x"}}`))
		if err == nil {
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("X-User-Id", "bench")
		}
		return r, err
	}
}

// benchIntent is a pending intent as a grant of main's request writes it,
// expiring in two hours.
func benchIntent(id string, now time.Time) *store.Intent {
	return &store.Intent{ID: id, Profile: "bench", Bucket: "uploads", Key: "bench/" + now.Format("2006/01/02") + "/" + id + ".png",
		Filename: "cat.png", ContentType: "image/png", Size: 52311, MaxSize: 10 << 20, Metadata: json.RawMessage(`{"album":"x"}`),
		Identity: "bench", Status: store.StatusPending, CreatedAt: now, ExpiresAt: now.Add(2 * time.Hour), UpdatedAt: now}
}

// fill creates n intents (ids from first on) through the store from 64
// goroutines, so creates are group-committed, and runs then on each.
func fill(db *store.Badger, n, first int, then func(in *store.Intent) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	now := time.Now().UTC()
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				in := benchIntent(fmt.Sprintf("01scale%019d", int64(first)+i), now)
				check(db.Create(context.Background(), in))
				check(then(in))
			}
		}()
	}
	wg.Wait()
}

// measureDisk settles n intents the way the product does (complete with
// its event, settled, the event delivered), measures the disk, prunes them
// all and collects the value log, then writes n new pending intents and
// collects again, and compares with a fresh store holding only those.
func measureDisk(dir string, n int) *DiskMeasure {
	defer os.RemoveAll(dir)
	m := &DiskMeasure{Settled: n, PendingAfterPruning: n}
	ctx := context.Background()
	db, err := store.OpenBadgerUnsynced(dir, nil)
	check(err)
	fill(db, n, 0, func(in *store.Intent) error {
		now := time.Now().UTC()
		evID := "ev" + in.ID
		_, err := db.Update(ctx, in.ID, store.StatusPending, func(x *store.Intent) (store.Event, error) {
			x.Status, x.UpdatedAt, x.ObjectSize, x.ObjectType, x.ETag, x.VerifiedAt = store.StatusCompleted, now, 52311, "image/png", `"0123456789abcdef0123456789abcdef"`, now
			return store.Event{ID: evID, Type: store.EventCompleted, CreatedAt: now}, nil
		})
		if err == nil {
			_, err = db.Annotate(ctx, in.ID, store.StatusCompleted, func(x *store.Intent) { x.Settled = true })
		}
		if err == nil {
			_, err = db.SetDelivery(ctx, evID, store.Delivery{State: store.DeliveryDelivered, Attempts: 1, DeliveredAt: now})
		}
		return err
	})
	check(db.Close()) // flushed: the disk is what a restart finds
	m.BytesSettledTotal = diskUse(dir)
	m.BytesPerSettled = float64(m.BytesSettledTotal) / float64(n)

	db, err = store.OpenBadgerUnsynced(dir, nil)
	check(err)
	for i := 0; i < n; i++ {
		check(db.Prune(ctx, fmt.Sprintf("01scale%019d", i)))
	}
	k, err := db.CollectGarbage()
	check(err)
	m.ValueLogFilesGCed += k
	m.BytesAfterPrune = diskUse(dir)

	fill(db, n, n, func(*store.Intent) error { return nil })
	k, err = db.CollectGarbage()
	check(err)
	m.ValueLogFilesGCed += k
	check(db.Close())
	m.BytesAfterTraffic = diskUse(dir)

	fresh := dir + "-fresh"
	defer os.RemoveAll(fresh)
	db, err = store.OpenBadgerUnsynced(fresh, nil)
	check(err)
	fill(db, n, n, func(*store.Intent) error { return nil })
	check(db.Close())
	m.BytesFreshTraffic = diskUse(fresh)
	m.ResiduePerPruned = float64(m.BytesAfterTraffic-m.BytesFreshTraffic) / float64(n)
	log.Printf("disk: %.0f bytes per settled intent (%d intents, %d bytes); pruned and value log collected: %d bytes; after %d new pending intents: %d bytes vs %d for a fresh store with only those (%.0f bytes left per pruned intent; %d value-log files rewritten)",
		m.BytesPerSettled, n, m.BytesSettledTotal, m.BytesAfterPrune, n, m.BytesAfterTraffic, m.BytesFreshTraffic, m.ResiduePerPruned, m.ValueLogFilesGCed)
	return m
}

// writeScale writes scale.md and scale.svg.
func writeScale(out string, sc *Scale) {
	check(os.MkdirAll(out, 0o755))
	check(os.WriteFile(filepath.Join(out, "scale.md"), []byte(scaleMarkdown(sc)), 0o644))
	check(os.WriteFile(filepath.Join(out, "scale.svg"), []byte(scaleChart(sc)), 0o644))
	log.Printf("wrote %s/{scale.md,scale.svg}", out)
}

func scaleMarkdown(sc *Scale) string {
	var b bytes.Buffer
	b.WriteString("![grants/s and p99 by stored intents](scale.svg)\n\n| stored intents | grants/s (best of 2 rounds) | p50 ms | p99 ms | Caddy CPU µs/grant | vs the smallest store |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range sc.Points {
		fmt.Fprintf(&b, "| %d | %.0f | %.2f | %.2f | %.1f | %.2f× |\n", p.Stored, p.Best.RPS, p.Best.P50ms, p.Best.P99ms, p.Best.CaddyCPUus, p.Best.RPS/sc.Points[0].Best.RPS)
	}
	if d := sc.Disk; d != nil {
		fmt.Fprintf(&b, "\n| disk, %d settled intents | bytes |\n|---|---:|\n", d.Settled)
		fmt.Fprintf(&b, "| per settled intent (intent, its event delivered, indexes) | %.0f |\n", d.BytesPerSettled)
		fmt.Fprintf(&b, "| all, settled | %d |\n", d.BytesSettledTotal)
		fmt.Fprintf(&b, "| all pruned, value log collected | %d |\n", d.BytesAfterPrune)
		fmt.Fprintf(&b, "| then %d new pending intents written | %d |\n", d.PendingAfterPruning, d.BytesAfterTraffic)
		fmt.Fprintf(&b, "| a fresh store with only those | %d |\n", d.BytesFreshTraffic)
		fmt.Fprintf(&b, "| left per pruned intent | %.0f |\n", d.ResiduePerPruned)
	}
	return b.String()
}

// scaleChart draws grants/s (bars) and p99 (labels and a line) by size.
func scaleChart(sc *Scale) string {
	const w, h, pad = 480, 260, 40
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`, w, h)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-weight="bold">grants/s by stored intents (bars); p99 ms (line)</text>`, pad)
	if len(sc.Points) == 0 {
		b.WriteString(`</svg>`)
		return b.String()
	}
	maxRPS, maxP99 := 0.0, 0.0
	for _, p := range sc.Points {
		maxRPS, maxP99 = math.Max(maxRPS, p.Best.RPS), math.Max(maxP99, p.Best.P99ms)
	}
	bw := (w - 2*pad) / len(sc.Points)
	top := h - 2*pad - 20
	var line []string
	for i, p := range sc.Points {
		bh := int(float64(top) * p.Best.RPS / maxRPS)
		x := pad + i*bw
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#f58518"/>`, x+8, h-pad-bh, bw-16, bh)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%.0f/s</text>`, x+bw/2, h-pad-bh-4, p.Best.RPS)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s stored</text>`, x+bw/2, h-pad+16, countLabel(p.Stored))
		py := h - pad - int(float64(top)*p.Best.P99ms/maxP99)
		line = append(line, fmt.Sprintf("%d,%d", x+bw/2, py))
		fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="3" fill="#4c78a8"/><text x="%d" y="%d" fill="#4c78a8">p99 %.1f ms</text>`, x+bw/2, py, x+bw/2+5, py-5, p.Best.P99ms)
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#4c78a8" stroke-width="2"/>`, strings.Join(line, " "))
	b.WriteString(`</svg>`)
	return b.String()
}

func countLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}
