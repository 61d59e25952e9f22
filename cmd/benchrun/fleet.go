package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// FleetResults compares the PostgreSQL store with Badger and the respond
// ceiling in one run, and grants spread over 1, 2 and 3 Caddy instances on
// one PostgreSQL.
type FleetResults struct {
	When        string            `json:"when"`
	Machine     map[string]string `json:"machine"`
	Connections int               `json:"connections"`
	RoundSecs   float64           `json:"round_seconds"`
	// Rounds alternate ceiling, Badger grant, PostgreSQL grant, twice.
	Rounds   []Round `json:"rounds"`
	Ceiling  Round   `json:"ceiling_best"`
	Badger   Round   `json:"badger_best"`
	Postgres Round   `json:"postgres_best"`

	PostgresOverBadgerRPS  float64 `json:"postgres_rps_over_badger"`
	PostgresOverCeilingRPS float64 `json:"postgres_rps_over_ceiling"`
	BadgerOverCeilingRPS   float64 `json:"badger_rps_over_ceiling"`
	PostgresOverBadgerP99  float64 `json:"postgres_p99_over_badger"`

	CompleteBadgerMs   float64 `json:"complete_badger_ms_median"`
	CompletePostgresMs float64 `json:"complete_postgres_ms_median"`
	BareS3Ms           float64 `json:"bare_s3_ms_median"`

	// Instances are grant rounds spread over 1, 2 and 3 Caddy processes
	// sharing one PostgreSQL, with the same connections in total.
	Instances []Round `json:"instances"`
}

// measureFleet starts a Caddy on Badger, PostgreSQL and three Caddy
// processes on it, and measures.
func measureFleet(s3srv *testkit.Versity, tmp string, conns int, roundDur time.Duration) FleetResults {
	res := FleetResults{When: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Connections: conns, RoundSecs: roundDur.Seconds()}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		// Other work on the machine moves the figures: say how busy it was.
		res.Machine["loadavg_at_start"] = strings.Join(strings.Fields(string(data))[:3], " ")
	}
	pg, err := testkit.StartPostgres()
	check(err)
	defer pg.Close()

	text := strings.Replace(caddyfile, "CEILING_BODY", "`"+ceilingBody+"`", 1)
	start := func(name, storeLine string) (*testkit.Caddy, string) {
		dir := filepath.Join(tmp, "fleet-"+name)
		check(os.MkdirAll(dir, 0o755))
		cf := filepath.Join(dir, "Caddyfile")
		check(os.WriteFile(cf, []byte(strings.Replace(text, "storage {$STORE_DIR}", storeLine, 1)), 0o644))
		site, _ := testkit.FreePort()
		admin, _ := testkit.FreePort()
		c, err := testkit.StartCaddy(cf, fmt.Sprintf("127.0.0.1:%d", admin), []string{
			fmt.Sprintf("SITE_PORT=%d", site), fmt.Sprintf("ADMIN_PORT=%d", admin), "STORE_DIR=" + filepath.Join(dir, "intents"),
			"DSN=" + pg.DSN("bench-"+name),
			"S3_ENDPOINT=" + s3srv.URL, "S3_ACCESS=" + s3srv.AccessKey, "S3_SECRET=" + s3srv.SecretKey,
			"XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		})
		check(err)
		return c, fmt.Sprintf("http://127.0.0.1:%d", site)
	}
	badger, badgerURL := start("badger", "storage {$STORE_DIR}")
	defer badger.Stop(10 * time.Second)
	pgLine := "store postgres {\n\t\t\tdsn {$DSN}\n\t\t\ttable_prefix bench_\n\t\t}"
	var pgURLs []string
	for i := 0; i < 3; i++ {
		c, u := start(fmt.Sprintf("pg%d", i+1), pgLine)
		defer c.Stop(10 * time.Second)
		pgURLs = append(pgURLs, u)
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns * 2, MaxConnsPerHost: conns * 2}}
	grantOn := func(bases ...string) func() (*http.Request, error) {
		var next atomic.Int64
		return func() (*http.Request, error) {
			base := bases[int(next.Add(1))%len(bases)]
			r, err := http.NewRequest("POST", base+"/uploads", strings.NewReader(`{"filename":"cat.png","content_type":"image/png","size":52311,"metadata":{"album":"x"}}`))
			if err == nil {
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("X-User-Id", "bench")
			}
			return r, err
		}
	}
	ceiling := func() (*http.Request, error) { return http.NewRequest("GET", badgerURL+"/ceiling", nil) }
	log.Printf("fleet: warming up")
	load(client, ceiling, conns, time.Second, "warmup")
	load(client, grantOn(badgerURL), conns, time.Second, "warmup")
	load(client, grantOn(pgURLs...), conns, time.Second, "warmup")
	for i := 0; i < 2; i++ {
		for _, rt := range []struct {
			name string
			req  func() (*http.Request, error)
		}{{"ceiling (respond)", ceiling}, {"grant on Badger", grantOn(badgerURL)}, {"grant on PostgreSQL", grantOn(pgURLs[0])}} {
			r := load(client, rt.req, conns, roundDur, rt.name)
			log.Printf("fleet: %-22s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  (%d errors)", r.Route, r.RPS, r.P50ms, r.P99ms, r.Errors)
			res.Rounds = append(res.Rounds, r)
			switch {
			case strings.HasPrefix(r.Route, "ceiling") && r.RPS > res.Ceiling.RPS:
				res.Ceiling = r
			case strings.Contains(r.Route, "Badger") && r.RPS > res.Badger.RPS:
				res.Badger = r
			case strings.Contains(r.Route, "PostgreSQL") && r.RPS > res.Postgres.RPS:
				res.Postgres = r
			}
		}
	}
	res.PostgresOverBadgerRPS = res.Postgres.RPS / res.Badger.RPS
	res.PostgresOverCeilingRPS = res.Postgres.RPS / res.Ceiling.RPS
	res.BadgerOverCeilingRPS = res.Badger.RPS / res.Ceiling.RPS
	res.PostgresOverBadgerP99 = res.Postgres.P99ms / res.Badger.P99ms

	for n := 1; n <= 3; n++ {
		r := load(client, grantOn(pgURLs[:n]...), conns, roundDur, fmt.Sprintf("grant on PostgreSQL, %d instance(s)", n))
		log.Printf("fleet: %-36s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  (%d errors)", r.Route, r.RPS, r.P50ms, r.P99ms, r.Errors)
		res.Instances = append(res.Instances, r)
	}

	res.CompleteBadgerMs, res.BareS3Ms, _ = completeVsBare(client, badgerURL, s3srv)
	res.CompletePostgresMs, _, _ = completeVsBare(client, pgURLs[0], s3srv)
	log.Printf("fleet: complete %.2f ms on Badger, %.2f ms on PostgreSQL (bare ranged GET %.2f ms)", res.CompleteBadgerMs, res.CompletePostgresMs, res.BareS3Ms)
	return res
}

func writeFleet(out string, r FleetResults) {
	check(os.MkdirAll(out, 0o755))
	js, _ := json.MarshalIndent(r, "", "  ")
	check(os.WriteFile(filepath.Join(out, "fleet.json"), append(js, '\n'), 0o644))
	check(os.WriteFile(filepath.Join(out, "fleet.md"), []byte(fleetMarkdown(r)), 0o644))
	log.Printf("wrote %s/{fleet.json,fleet.md}", out)
}

func fleetMarkdown(r FleetResults) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# PostgreSQL store: benchmark results\n\nOne run, %s, on %s (%s CPUs, %s), %s. Load: %d connections, closed loop, %.0f s rounds; "+
		"the load generator, PostgreSQL 15 (a throw-away cluster, default settings but `max_connections 300`, `shared_buffers 32MB`) and every Caddy share the same cores.\n\n",
		r.When, r.Machine["cpu"], r.Machine["cpus"], r.Machine["memory"], r.Machine["go"], r.Connections, r.RoundSecs)
	if la := r.Machine["loadavg_at_start"]; la != "" {
		fmt.Fprintf(&b, "Load average of the machine when the run began: %s (other work shares the cores; compare rounds of the same run only).\n\n", la)
	}
	b.WriteString("| round | req/s | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|\n")
	for _, x := range r.Rounds {
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.2f | %d |\n", x.Route, x.RPS, x.P50ms, x.P99ms, x.Errors)
	}
	fmt.Fprintf(&b, "\n| measure | result | goal |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| grants/s, PostgreSQL / Badger (best rounds) | **%.2f×** (%.0f vs %.0f) | ≥ 0.6× |\n", r.PostgresOverBadgerRPS, r.Postgres.RPS, r.Badger.RPS)
	fmt.Fprintf(&b, "| grant p99, PostgreSQL / Badger | %.2f× (%.2f vs %.2f ms) | ≤ 3× |\n", r.PostgresOverBadgerP99, r.Postgres.P99ms, r.Badger.P99ms)
	fmt.Fprintf(&b, "| grants/s / respond ceiling | PostgreSQL %.2f×, Badger %.2f× (ceiling %.0f req/s) | |\n", r.PostgresOverCeilingRPS, r.BadgerOverCeilingRPS, r.Ceiling.RPS)
	fmt.Fprintf(&b, "| `complete` median | PostgreSQL %.2f ms, Badger %.2f ms (bare ranged GET %.2f ms) | |\n", r.CompletePostgresMs, r.CompleteBadgerMs, r.BareS3Ms)
	b.WriteString("\nGrants spread round robin over N Caddy processes on the one PostgreSQL, same connections in total. " +
		"On this machine every process shares the same cores, so this shows the cost of sharing one database, not scaling: " +
		"more instances only add processes competing for the same CPUs.\n\n| instances | req/s | vs 1 instance | p50 ms | p99 ms | errors |\n|---:|---:|---:|---:|---:|---:|\n")
	for i, x := range r.Instances {
		fmt.Fprintf(&b, "| %d | %.0f | %.2f× | %.2f | %.2f | %d |\n", i+1, x.RPS, x.RPS/r.Instances[0].RPS, x.P50ms, x.P99ms, x.Errors)
	}
	return b.String()
}
