// Command benchrun measures the sidecar over HTTP against baselines taken in
// the same run, on this machine: one Caddy process serves both a `respond`
// route (the ceiling for any Caddy handler) and the direct_upload grant
// route, driven by the same closed-loop load generator in alternating
// rounds (A/B/A/B). It also measures complete against its bare S3 calls,
// memory and disk per pending intent, and how many upload bytes pass
// through the sidecar. Results go to docs/bench/ (JSON, Markdown, SVG).
//
//	make bench            # runs the Go benchmarks, then this
//	go run ./cmd/benchrun -gobench bench.txt -out docs/bench
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// ceilingBody is the static JSON the ceiling route answers: about the size
// of a grant.
var ceilingBody = `{"id":"01m8h0g1saxzbz711pavtr43xf","method":"POST","url":"http://127.0.0.1:7070/uploads","fields":{"Content-Type":"image/png","X-Amz-Algorithm":"AWS4-HMAC-SHA256","X-Amz-Credential":"AK/20261128/us-east-1/s3/aws4_request","X-Amz-Date":"20261128T120121Z","X-Amz-Signature":"ca64f83d8dbf76ec8c95b8b3396448687c5129ca67716bbb91e6b6cab36a0074","key":"default/2026/11/28/01m8h0g1saxzbz711pavtr43xf.png","policy":"eyJjb25kaXRpb25zIjpbeyJYLUFtei1BbGdvcml0aG0iOiJBV1M0LUhNQUMtU0hBMjU2In0seyJidWNrZXQiOiJ1cGxvYWRzIn1dfQ==","success_action_status":"201"},"key":"default/2026/11/28/01m8h0g1saxzbz711pavtr43xf.png","bucket":"uploads","max_size":10485760}`

const caddyfile = `{
	admin 127.0.0.1:{$ADMIN_PORT}
	direct_upload {
		storage {$STORE_DIR}
	}
}
http://127.0.0.1:{$SITE_PORT} {
	bind 127.0.0.1
	handle /ceiling {
		header Content-Type application/json
		respond CEILING_BODY 200
	}
	handle /uploads* {
		direct_upload {
			profile bench
			bucket uploads
			endpoint {$S3_ENDPOINT}
			path_style
			access_key_id {env.S3_ACCESS}
			secret_access_key {env.S3_SECRET}
			identity {http.request.header.X-User-Id}
		}
	}
}
`

// Round is one load round against one route.
type Round struct {
	Route    string  `json:"route"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	// CaddyCPUus is the Caddy process's CPU time per request (user+system).
	CaddyCPUus float64 `json:"caddy_cpu_us_per_request"`
}

// Results is what one run measured.
type Results struct {
	When        string            `json:"when"`
	Machine     map[string]string `json:"machine"`
	Connections int               `json:"connections"`
	RoundSecs   float64           `json:"round_seconds"`
	Rounds      []Round           `json:"rounds"`
	Ceiling     Round             `json:"ceiling_best"`
	Presign     Round             `json:"presign_best"`
	RatioRPS    float64           `json:"presign_rps_over_ceiling"`
	RatioP99    float64           `json:"presign_p99_over_ceiling"`

	// Complete is complete against its bare S3 calls at 1 and 32 (complete.go).
	Complete []CompleteRow `json:"complete"`

	PendingIntents   int     `json:"pending_intents"`
	RSSMiB           float64 `json:"rss_mib"`
	LiveHeapMiB      float64 `json:"live_heap_mib"`
	DiskBytesPer     float64 `json:"disk_bytes_per_intent"`
	UploadedBytes    int64   `json:"uploaded_bytes"`
	SidecarReadBytes int64   `json:"sidecar_read_bytes_during_uploads"`
	// Memory is RSS after the grant burst with its breakdown (memory.go).
	Memory Memory `json:"memory"`
	// MemoryLimited is the same measure in a fresh Caddy with GOMEMLIMIT
	// set (-memlimit-also).
	MemoryLimited *Memory `json:"memory_with_gomemlimit,omitempty"`
	// Scale is the grant rate by stored intents and the disk measure (scale.go).
	Scale *Scale `json:"scale,omitempty"`

	GoBench []string `json:"go_benchmarks"`

	// CompleteTargets is the rows the complete measurement adds to
	// the targets table; Targets is the whole
	// table, every target of the run, met or not (targets.go).
	CompleteTargets []Target `json:"-"`
	Targets         []Target `json:"targets"`
	// Dispatcher: see dispatch.go.
	Dispatcher *DispatcherBench `json:"dispatcher,omitempty"`
}

func main() {
	conns := flag.Int("c", 32, "concurrent connections")
	roundDur := flag.Duration("d", 5*time.Second, "duration of each load round")
	pending := flag.Int("pending", 100_000, "pending intents for the memory and disk measure")
	gobench := flag.String("gobench", "", "output of `go test -bench` to include")
	heapProfile := flag.String("heap", "", "write Caddy's heap profile here at the end")
	cpuProfile := flag.String("cpu", "", "write Caddy's CPU profile of the last presign round here")
	memLimit := flag.String("memlimit", "", "GOMEMLIMIT for Caddy (empty: Caddy's default)")
	fleet := flag.Bool("fleet", true, "also compare the PostgreSQL store with Badger and run 1-3 instances on it (fleet.go; writes fleet.json, fleet.md)")
	fleetOnly := flag.Bool("fleet-only", false, "only the PostgreSQL/fleet measurements")
	out := flag.String("out", filepath.Join(testkit.RepoRoot(), "docs", "bench"), "output directory")
	flag.Parse()
	log.SetFlags(0)

	tmp, err := os.MkdirTemp("", "benchrun-*")
	check(err)
	defer os.RemoveAll(tmp)

	s3srv, err := testkit.StartVersity(filepath.Join(tmp, "s3"), 0)
	check(err)
	defer s3srv.Stop(5 * time.Second)
	check(s3srv.CreateBucket(context.Background(), "uploads"))
	if *fleetOnly {
		writeFleet(*out, measureFleet(s3srv, tmp, *conns, *roundDur))
		return
	}

	site, _ := testkit.FreePort()
	admin, _ := testkit.FreePort()
	store := filepath.Join(tmp, "intents")
	cf := filepath.Join(tmp, "Caddyfile")
	check(os.WriteFile(cf, []byte(strings.Replace(caddyfile, "CEILING_BODY", "`"+ceilingBody+"`", 1)), 0o644))
	caddy, err := testkit.StartCaddy(cf, fmt.Sprintf("127.0.0.1:%d", admin), []string{
		fmt.Sprintf("SITE_PORT=%d", site), fmt.Sprintf("ADMIN_PORT=%d", admin), "STORE_DIR=" + store,
		"S3_ENDPOINT=" + s3srv.URL, "S3_ACCESS=" + s3srv.AccessKey, "S3_SECRET=" + s3srv.SecretKey,
		"XDG_DATA_HOME=" + filepath.Join(tmp, "data"), "XDG_CONFIG_HOME=" + filepath.Join(tmp, "config"),
		"GOMEMLIMIT=" + *memLimit,
	})
	check(err)
	defer caddy.Stop(10 * time.Second)
	startRSS, startAnon := smapsRollup(caddy.Pid())
	base := fmt.Sprintf("http://127.0.0.1:%d", site)

	res := Results{When: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Connections: *conns, RoundSecs: roundDur.Seconds()}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conns * 2, MaxConnsPerHost: *conns * 2}}
	caddyAdmin = fmt.Sprintf("127.0.0.1:%d", admin)
	if *completeOnly {
		measureComplete(client, base, s3srv, caddy.Pid())
		return
	}

	ceiling := func() (*http.Request, error) { return http.NewRequest("GET", base+"/ceiling", nil) }
	grant := func() (*http.Request, error) {
		r, err := http.NewRequest("POST", base+"/uploads", strings.NewReader(`{"filename":"cat.png","content_type":"image/png","size":52311,"metadata":{"album":"x"}}`))
		if err == nil {
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("X-User-Id", "bench")
		}
		return r, err
	}
	log.Printf("warming up")
	load(client, ceiling, *conns, time.Second, "warmup")
	load(client, grant, *conns, time.Second, "warmup")
	for i := 0; i < 2; i++ {
		for _, rt := range []struct {
			name string
			req  func() (*http.Request, error)
		}{{"ceiling (respond)", ceiling}, {"presign (direct_upload)", grant}} {
			var prof chan []byte
			if *cpuProfile != "" && i == 1 && strings.HasPrefix(rt.name, "presign") {
				prof = make(chan []byte, 1)
				go func() {
					resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", admin, int(roundDur.Seconds())-1))
					check(err)
					data, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					prof <- data
				}()
			}
			cpu0 := cpuTime(caddy.Pid())
			r := load(client, rt.req, *conns, *roundDur, rt.name)
			if r.Requests > 0 {
				r.CaddyCPUus = float64((cpuTime(caddy.Pid()) - cpu0).Microseconds()) / float64(r.Requests)
			}
			if prof != nil {
				check(os.WriteFile(*cpuProfile, <-prof, 0o644))
			}
			log.Printf("%-24s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  Caddy CPU %5.1f us/req  (%d errors)", r.Route, r.RPS, r.P50ms, r.P99ms, r.CaddyCPUus, r.Errors)
			res.Rounds = append(res.Rounds, r)
		}
	}
	for _, r := range res.Rounds {
		if strings.HasPrefix(r.Route, "ceiling") && r.RPS > res.Ceiling.RPS {
			res.Ceiling = r
		}
		if strings.HasPrefix(r.Route, "presign") && r.RPS > res.Presign.RPS {
			res.Presign = r
		}
	}
	res.RatioRPS = res.Presign.RPS / res.Ceiling.RPS
	res.RatioP99 = res.Presign.P99ms / res.Ceiling.P99ms

	res.Complete = measureComplete(client, base, s3srv, caddy.Pid())
	res.CompleteTargets = completeTargets(res.Complete)

	// Caddy idle first: rchar counts file reads too, and the compactions
	// the complete rounds left read the store's tables.
	waitIdle(caddy.Pid(), time.Minute)
	res.UploadedBytes, res.SidecarReadBytes = payloadThroughSidecar(client, base, caddy.Pid())
	log.Printf("uploaded %d bytes to S3; the sidecar read %d bytes meanwhile", res.UploadedBytes, res.SidecarReadBytes)

	res.PendingIntents = *pending
	res.Memory = memoryAndDisk(client, grant, *conns, *pending, caddy.Pid(), admin, store, *memLimit)
	res.Memory.StartRSSMiB, res.Memory.StartAnonMiB = startRSS, startAnon
	res.RSSMiB, res.LiveHeapMiB, res.DiskBytesPer = res.Memory.RSSMiB, res.Memory.LiveHeapMiB, res.Memory.DiskBytesPer
	log.Printf("%s", res.Memory)
	if *memLimitAlso != "" {
		m := memoryWithLimit(s3srv, tmp, *conns, *pending, *memLimitAlso)
		res.MemoryLimited = &m
		log.Printf("%s", m)
	}
	if *heapProfile != "" {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap", admin))
		check(err)
		f, err := os.Create(*heapProfile)
		check(err)
		io.Copy(f, resp.Body)
		f.Close()
		resp.Body.Close()
	}

	if *scaleSizes != "" || *scaleDisk > 0 {
		res.Scale = measureScale(s3srv, tmp, *conns, *roundDur)
		writeScale(*out, res.Scale)
	}

	if *gobench != "" {
		data, err := os.ReadFile(*gobench)
		check(err)
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "Benchmark") {
				res.GoBench = append(res.GoBench, strings.Join(strings.Fields(line), " "))
			}
		}
		res.Dispatcher = dispatcherFromGoBench(res.GoBench)
	}
	if *fleet {
		writeFleet(*out, measureFleet(s3srv, tmp, *conns, *roundDur))
	}
	res.Targets = targetsOf(res)
	check(os.MkdirAll(*out, 0o755))
	js, _ := json.MarshalIndent(res, "", "  ")
	check(os.WriteFile(filepath.Join(*out, "results.json"), append(js, '\n'), 0o644))
	check(os.WriteFile(filepath.Join(*out, "results.md"), []byte(markdown(res)), 0o644))
	check(os.WriteFile(filepath.Join(*out, "chart.svg"), []byte(chart(res)), 0o644))
	log.Printf("wrote %s/{results.json,results.md,chart.svg}", *out)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// load runs a closed loop of conns workers for d and measures it.
func load(client *http.Client, mk func() (*http.Request, error), conns int, d time.Duration, name string) Round {
	var mu sync.Mutex
	var lats []time.Duration
	var errs atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<14)
			for time.Now().Before(deadline) {
				req, _ := mk()
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					errs.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	r := Round{Route: name, Requests: len(lats), Errors: int(errs.Load()), Seconds: secs, RPS: float64(len(lats)) / secs}
	if len(lats) > 0 {
		r.P50ms = ms(lats[len(lats)/2])
		r.P99ms = ms(lats[len(lats)*99/100])
	}
	return r
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/10) / 100 }

func grantFor(client *http.Client, base string, size int) (map[string]any, error) {
	req, _ := http.NewRequest("POST", base+"/uploads", strings.NewReader(fmt.Sprintf(`{"content_type":"image/png","size":%d}`, size)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-Id", "bench")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var g map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&g); err != nil || resp.StatusCode != 201 {
		return nil, fmt.Errorf("grant: %d %v", resp.StatusCode, err)
	}
	return g, nil
}

func fieldsOf(g map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range g["fields"].(map[string]any) {
		out[k] = v.(string)
	}
	return out
}

// pngOf is size bytes that read as a 64 × 64 PNG: the signature and an
// IHDR with real dimensions (image profiles read and limit them), then
// zeros.
func pngOf(size int) []byte {
	b := make([]byte, size)
	copy(b, "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x40\x00\x00\x00\x40\x08\x06\x00\x00\x00")
	return b
}

// completeVsBare times `complete` through Caddy against the S3 call it
// makes (one ranged GET of 512 bytes), made directly, one at a time, on the
// same uploaded objects; and against a HEAD followed by that GET.
func completeVsBare(client *http.Client, base string, s3srv *testkit.Versity) (float64, float64, float64) {
	const n = 200
	data := pngOf(4096)
	var ids, keys []string
	for i := 0; i < n; i++ {
		g, err := grantFor(client, base, len(data))
		check(err)
		status, body, err := testkit.PostForm(g["url"].(string), fieldsOf(g), "image/png", data)
		if err != nil || status != 201 {
			log.Fatalf("upload: %d %v %s", status, err, body)
		}
		// The object is where the form put it: the grant's key, or its
		// staging key when the profile promotes.
		ids, keys = append(ids, g["id"].(string)), append(keys, fieldsOf(g)["key"])
	}
	api := s3srv.Client()
	get := func(key string) {
		out, err := api.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("uploads"), Key: aws.String(key), Range: aws.String("bytes=0-511")})
		check(err)
		io.Copy(io.Discard, out.Body)
		out.Body.Close()
	}
	var bare, headGet, comp []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		get(keys[i])
		bare = append(bare, time.Since(t0))
		t0 = time.Now()
		_, err := api.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("uploads"), Key: aws.String(keys[i])})
		check(err)
		get(keys[i])
		headGet = append(headGet, time.Since(t0))

		req, _ := http.NewRequest("POST", base+"/uploads/"+ids[i]+"/complete", nil)
		req.Header.Set("X-User-Id", "bench")
		t0 = time.Now()
		resp, err := client.Do(req)
		check(err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			log.Fatalf("complete: %d", resp.StatusCode)
		}
		comp = append(comp, time.Since(t0))
	}
	return median(comp), median(bare), median(headGet)
}

func median(ds []time.Duration) float64 {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return float64(ds[len(ds)/2].Microseconds()) / 1000
}

// payloadThroughSidecar uploads 20 files of 1 MiB through the whole flow
// and reports how many bytes the Caddy process read meanwhile (rchar:
// sockets and files): the API's JSON and the 512-byte sniff reads, never
// the files.
func payloadThroughSidecar(client *http.Client, base string, pid int) (int64, int64) {
	data := pngOf(1 << 20)
	before := rchar(pid)
	var total int64
	for i := 0; i < 20; i++ {
		g, err := grantFor(client, base, len(data))
		check(err)
		status, body, err := testkit.PostForm(g["url"].(string), fieldsOf(g), "image/png", data)
		if err != nil || status != 201 {
			log.Fatalf("upload: %d %v %s", status, err, body)
		}
		total += int64(len(data))
		req, _ := http.NewRequest("POST", base+"/uploads/"+g["id"].(string)+"/complete", nil)
		req.Header.Set("X-User-Id", "bench")
		resp, err := client.Do(req)
		check(err)
		resp.Body.Close()
	}
	return total, rchar(pid) - before
}

// cpuTime is a process's user+system CPU time so far.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	// Fields after the command name (which may hold spaces): utime is the
	// 14th field, stime the 15th, in clock ticks (100 per second here).
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func rchar(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	check(err)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// diskUse is the blocks really used under dir (Badger preallocates sparse
// files, so apparent sizes would mislead).
func diskUse(dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return total
}

func machine() map[string]string {
	m := map[string]string{"go": runtime.Version(), "cpus": strconv.Itoa(runtime.NumCPU()), "os": runtime.GOOS + "/" + runtime.GOARCH}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name\t: "); ok {
				m["cpu"] = v
				break
			}
		}
	}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		m["kernel"] = strings.TrimSpace(string(out))
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		m["memory"] = strings.TrimSpace(strings.TrimPrefix(strings.SplitN(string(data), "\n", 2)[0], "MemTotal:"))
	}
	return m
}

func markdown(r Results) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Benchmark results\n\nOne `make bench` run, %s, on %s (%s CPUs, %s), %s. Load: %d connections, closed loop, %.0f s rounds alternating A/B/A/B in one Caddy process; load generator on the same cores.\n\n",
		r.When, r.Machine["cpu"], r.Machine["cpus"], r.Machine["memory"], r.Machine["go"], r.Connections, r.RoundSecs)
	b.WriteString("## Targets\n\nEach target of the performance issue, met or not, from this one run: the HTTP rounds and figures below, and the Go benchmarks at the end.\n\n" + targetsMarkdown(r.Targets) + "\n## Grant rounds\n\n")
	b.WriteString("![throughput and latency](chart.svg)\n\n| round | req/s | p50 ms | p99 ms | Caddy CPU µs/request | errors |\n|---|---:|---:|---:|---:|---:|\n")
	for _, x := range r.Rounds {
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.2f | %.1f | %d |\n", x.Route, x.RPS, x.P50ms, x.P99ms, x.CaddyCPUus, x.Errors)
	}
	fmt.Fprintf(&b, "\n## Other figures of the run\n\n| measure | result | goal |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| grant p99 / ceiling p99 | %.2f× (%.2f vs %.2f ms) | ≤ 2× |\n", r.RatioP99, r.Presign.P99ms, r.Ceiling.P99ms)
	b.WriteString(completeMarkdown(r.Complete))
	if m := r.Memory; m.RSSMiB > 0 {
		fmt.Fprintf(&b, "| memory after the burst of %d grants: RSS = anonymous + file pages | %.1f = %.1f + %.1f MiB (Caddy right after start: %.1f MiB; peak during the burst %.1f MiB RSS, %.1f MiB heap) | |\n",
			m.Pending, m.RSSMiB, m.AnonMiB, m.FileMiB, m.StartRSSMiB, m.PeakRSSMiB, m.PeakHeapMiB)
	}
	fmt.Fprintf(&b, "| disk per pending intent | %.0f bytes | ≤ 1 KiB |\n", r.DiskBytesPer)
	fmt.Fprintf(&b, "| bytes the sidecar read while %d upload bytes went to S3 | %d (API JSON and the verification reads: the first 64 KiB of each image, for its type and dimensions) | payload 0 |\n", r.UploadedBytes, r.SidecarReadBytes)
	if r.Scale != nil && len(r.Scale.Points) > 0 {
		b.WriteString("\nThe scale curve of the same run: [scale.md](scale.md).\n\n![grants/s by intents stored](scale.svg)\n")
	}
	if len(r.GoBench) > 0 {
		b.WriteString("\nGo benchmarks of the same run (`go test -bench`):\n\n```\n")
		for _, l := range r.GoBench {
			b.WriteString(l + "\n")
		}
		b.WriteString("```\n")
	}
	return b.String()
}

// chart draws req/s and p50/p99 of each round as bars.
func chart(r Results) string {
	const w, h, pad = 720, 300, 40
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`, w, h)
	maxRPS, maxMs := 0.0, 0.0
	for _, x := range r.Rounds {
		maxRPS = math.Max(maxRPS, x.RPS)
		maxMs = math.Max(maxMs, x.P99ms)
	}
	half := (w - 3*pad) / 2
	fmt.Fprintf(&b, `<text x="%d" y="20" font-weight="bold">req/s (higher is better)</text>`, pad)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-weight="bold">latency ms: p50 solid, p99 light</text>`, 2*pad+half)
	bw := half / len(r.Rounds)
	for i, x := range r.Rounds {
		color := "#4c78a8"
		if strings.HasPrefix(x.Route, "presign") {
			color = "#f58518"
		}
		bh := int(float64(h-2*pad-20) * x.RPS / maxRPS)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, pad+i*bw+4, h-pad-bh, bw-8, bh, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%.0f</text>`, pad+i*bw+bw/2, h-pad-bh-4, x.RPS)
		p99h := int(float64(h-2*pad-20) * x.P99ms / maxMs)
		p50h := int(float64(h-2*pad-20) * x.P50ms / maxMs)
		x0 := 2*pad + half + i*bw + 4
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s" opacity="0.35"/>`, x0, h-pad-p99h, bw-8, p99h, color)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, x0, h-pad-p50h, bw-8, p50h, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%.2f</text>`, x0+(bw-8)/2, h-pad-p99h-4, x.P99ms)
		label := "ceiling"
		if strings.HasPrefix(x.Route, "presign") {
			label = "presign"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s %d</text>`, pad+i*bw+bw/2, h-pad+16, label, i/2+1)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s %d</text>`, x0+(bw-8)/2, h-pad+16, label, i/2+1)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d">%d connections, %s, presign/ceiling %.2f×</text>`, pad, h-8, r.Connections, r.Machine["cpus"]+" CPUs", r.RatioRPS)
	b.WriteString(`</svg>`)
	return b.String()
}
