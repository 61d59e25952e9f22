package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

var (
	completeOnly = flag.Bool("complete-only", false, "only measure complete against its bare S3 calls (complete.go)")
	completeCPU  = flag.String("complete-cpu", "", "write Caddy's CPU profiles of the last complete round at each concurrency here (suffixed .c1, .c32)")
	completeN    = flag.Int("complete-n", 0, "completes per round and concurrency (0: 60 at 1, 320 at 32)")
)

// CompleteRow is `complete` through Caddy against the S3 calls it makes,
// made directly, at one concurrency.
type CompleteRow struct {
	Concurrency int `json:"concurrency"`
	// Requests is how many completes (and as many bare sequences) were timed.
	Requests   int     `json:"requests"`
	CompleteMs float64 `json:"complete_ms_median"`
	BareMs     float64 `json:"bare_s3_ms_median"`
	Ratio      float64 `json:"complete_over_bare"`
	CompleteP9 float64 `json:"complete_ms_p90"`
	BareP9     float64 `json:"bare_s3_ms_p90"`
	// Throughput of both, for the same concurrency (best round).
	CompletePerSec float64 `json:"completes_per_second"`
	BarePerSec     float64 `json:"bare_sequences_per_second"`
	// CaddyCPUus is the Caddy process's CPU time per complete.
	CaddyCPUus float64 `json:"caddy_cpu_us_per_complete"`
	// ServiceMs is the mean time inside the service's Complete (Caddy's
	// complete_duration_seconds), the rest of a complete's time being
	// HTTP and Caddy.
	ServiceMs float64 `json:"service_ms_mean"`
	// ServiceMedianMs is the median of the rounds' medians of that
	// histogram, interpolated in its buckets (1, 2.5, 5, 10 ms, ...).
	ServiceMedianMs float64 `json:"service_ms_median_approx"`
}

// completeUpload is one uploaded object waiting for its complete: the
// intent, the staging key the form wrote and the final key.
type completeUpload struct{ id, staging, key string }

// measureComplete times `complete` with promotion on (Caddy's default)
// against exactly the S3 calls it makes for a valid upload, made directly
// with an SDK client configured as the sidecar's (ranged GET of the head,
// CopyObject to the final key guarded by the verified ETag, DeleteObject
// of the staging object), on objects uploaded the same way, against the
// same server, at the same concurrency, in alternating rounds (bare,
// complete, bare, complete). Each complete and each bare sequence is
// timed alone; the ratio is of the medians.
func measureComplete(client *http.Client, base string, s3srv *testkit.Versity, pid int) []CompleteRow {
	api := s3.New(s3.Options{
		Region: s3srv.Region, BaseEndpoint: aws.String(s3srv.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s3srv.AccessKey, s3srv.SecretKey, ""),
		// As module/bucket configures the sidecar's client.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	var rows []CompleteRow
	for _, c := range []int{1, 32} {
		n := *completeN
		if n == 0 {
			n = 60
			if c > 1 {
				n = 320
			}
		}
		const rounds = 4 // of each, alternating: the machine's drift falls on both
		ups := prepareUploads(client, base, 2*rounds*n)
		var bare, comp []time.Duration
		row := CompleteRow{Concurrency: c}
		var cpu time.Duration
		var service float64
		var serviceMedians []float64
		for r := 0; r < rounds; r++ {
			batch := ups[2*r*n : (2*r+1)*n]
			lat, secs := completeRound(c, batch, func(u completeUpload) error { return bareComplete(api, u) })
			bare = append(bare, lat...)
			row.BarePerSec = max(row.BarePerSec, float64(len(lat))/secs)

			batch = ups[(2*r+1)*n : (2*r+2)*n]
			var prof chan []byte
			if *completeCPU != "" && r == rounds-1 {
				prof = profileCaddy(2)
			}
			cpu0 := cpuTime(pid)
			hist0 := completeSeconds()
			lat, secs = completeRound(c, batch, func(u completeUpload) error { return completeThroughCaddy(client, base, u) })
			cpu += cpuTime(pid) - cpu0
			hist1 := completeSeconds()
			service += hist1.sum - hist0.sum
			serviceMedians = append(serviceMedians, hist1.medianSince(hist0))
			if prof != nil {
				check(os.WriteFile(fmt.Sprintf("%s.c%d", *completeCPU, c), <-prof, 0o644))
			}
			comp = append(comp, lat...)
			row.CompletePerSec = max(row.CompletePerSec, float64(len(lat))/secs)
		}
		row.Requests = len(comp)
		row.CompleteMs, row.CompleteP9 = quantile(comp, 0.5), quantile(comp, 0.9)
		row.BareMs, row.BareP9 = quantile(bare, 0.5), quantile(bare, 0.9)
		row.Ratio = row.CompleteMs / row.BareMs
		row.CaddyCPUus = float64(cpu.Microseconds()) / float64(len(comp))
		row.ServiceMs = service * 1000 / float64(len(comp))
		sort.Float64s(serviceMedians)
		row.ServiceMedianMs = serviceMedians[len(serviceMedians)/2]
		log.Printf("complete at %2d concurrent: %.2f ms (p90 %.2f) vs its bare S3 calls %.2f ms (p90 %.2f): %.2fx; %.0f vs %.0f per s; Caddy CPU %.0f us and %.2f ms in the service per complete (median about %.1f ms)",
			c, row.CompleteMs, row.CompleteP9, row.BareMs, row.BareP9, row.Ratio, row.CompletePerSec, row.BarePerSec, row.CaddyCPUus, row.ServiceMs, row.ServiceMedianMs)
		rows = append(rows, row)
	}
	return rows
}

// caddyAdmin is the admin address of the Caddy under test, for profiles.
var caddyAdmin string

// completeHist is Caddy's complete_duration_seconds: its sum and the
// cumulative count of each bucket by upper bound (+Inf: the count).
type completeHist struct {
	sum     float64
	buckets map[float64]float64
}

func completeSeconds() completeHist {
	resp, err := http.Get("http://" + caddyAdmin + "/metrics")
	check(err)
	defer resp.Body.Close()
	h := completeHist{buckets: map[float64]float64{}}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || !strings.Contains(name, "complete_duration_seconds") {
			continue
		}
		f, _ := strconv.ParseFloat(val, 64)
		switch {
		case strings.Contains(name, "_sum"):
			h.sum += f
		case strings.Contains(name, "_bucket"):
			i := strings.Index(name, `,le="`) + 1 // not profile="
			if i == 0 {
				i = strings.Index(name, `{le="`) + 1
			}
			le, _, _ := strings.Cut(name[i+len(`le="`):], `"`)
			bound, err := strconv.ParseFloat(le, 64)
			if le == "+Inf" {
				bound, err = math.Inf(1), nil
			}
			if err == nil {
				h.buckets[bound] += f
			}
		}
	}
	return h
}

// medianSince is the median (ms) of the completes counted since h0,
// interpolated within its histogram bucket.
func (h completeHist) medianSince(h0 completeHist) float64 {
	var bounds []float64
	for b := range h.buckets {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	total := h.buckets[math.Inf(1)] - h0.buckets[math.Inf(1)]
	prevB, prevN := 0.0, 0.0
	for _, b := range bounds {
		n := h.buckets[b] - h0.buckets[b]
		if n >= total/2 {
			if math.IsInf(b, 1) || n == prevN {
				return prevB * 1000
			}
			return (prevB + (b-prevB)*(total/2-prevN)/(n-prevN)) * 1000
		}
		prevB, prevN = b, n
	}
	return 0
}

// profileCaddy starts a CPU profile of Caddy for secs seconds.
func profileCaddy(secs int) chan []byte {
	prof := make(chan []byte, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", caddyAdmin, secs))
		check(err)
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		prof <- data
	}()
	time.Sleep(100 * time.Millisecond) // the profile has started
	return prof
}

// prepareUploads grants and uploads n small PNGs through the whole flow,
// eight at a time; each lands on its staging key.
func prepareUploads(client *http.Client, base string, n int) []completeUpload {
	data := pngOf(4096)
	ups := make([]completeUpload, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				g, err := grantFor(client, base, len(data))
				check(err)
				f := fieldsOf(g)
				status, body, err := testkit.PostForm(g["url"].(string), f, "image/png", data)
				if err != nil || status != 201 {
					log.Fatalf("upload: %d %v %s", status, err, body)
				}
				if f["key"] == g["key"].(string) {
					log.Fatalf("the grant names its final key %s: promotion is off", f["key"])
				}
				ups[i] = completeUpload{id: g["id"].(string), staging: f["key"], key: g["key"].(string)}
			}
		})
	}
	wg.Wait()
	return ups
}

// completeRound runs op on every upload with c workers and returns each
// op's latency and the round's wall time.
func completeRound(c int, ups []completeUpload, op func(completeUpload) error) ([]time.Duration, float64) {
	lats := make([]time.Duration, len(ups))
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(ups); i = int(next.Add(1) - 1) {
				t0 := time.Now()
				check(op(ups[i]))
				lats[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	return lats, time.Since(start).Seconds()
}

// bareComplete makes the S3 calls complete makes for a valid upload under
// promotion, in its order: the ranged GET that verifies (a PNG's head is
// read up to 64 KiB for its dimensions), the copy to the final key on
// condition of the verified ETag, the staging object's deletion.
func bareComplete(api *s3.Client, u completeUpload) error {
	ctx := context.Background()
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("uploads"), Key: aws.String(u.staging), Range: aws.String("bytes=0-65535")})
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(out.Body, 64<<10))
	out.Body.Close()
	if _, err := api.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String("uploads"), Key: aws.String(u.key),
		CopySource:        aws.String("uploads/" + u.staging),
		CopySourceIfMatch: out.ETag,
		MetadataDirective: types.MetadataDirectiveCopy,
	}); err != nil {
		return err
	}
	_, err = api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("uploads"), Key: aws.String(u.staging)})
	return err
}

func completeThroughCaddy(client *http.Client, base string, u completeUpload) error {
	req, _ := http.NewRequest("POST", base+"/uploads/"+u.id+"/complete", nil)
	req.Header.Set("X-User-Id", "bench")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"completed"`) {
		return fmt.Errorf("complete: %d %s", resp.StatusCode, body)
	}
	return nil
}

// quantile of ds in milliseconds (ds is sorted in place).
func quantile(ds []time.Duration, q float64) float64 {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return float64(ds[int(float64(len(ds)-1)*q)].Microseconds()) / 1000
}

// completeTargets are the targets table's rows for complete: one per
// concurrency.
func completeTargets(rows []CompleteRow) []Target {
	var t []Target
	for _, r := range rows {
		t = append(t, atMost(fmt.Sprintf("`complete` / its bare S3 calls (ranged GET, conditional copy, delete), %d concurrent, medians", r.Concurrency),
			r.Ratio, 1.2, fmt.Sprintf("%.2f× (%.2f vs %.2f ms)", r.Ratio, r.CompleteMs, r.BareMs), "≤ 1.2×"))
	}
	return t
}

// completeMarkdown is the rows of the targets table for complete.
func completeMarkdown(rows []CompleteRow) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "| `complete` / its bare S3 calls (ranged GET, conditional copy, delete), %d concurrent (median) | %.2f× (%.2f vs %.2f ms; Caddy CPU %.0f µs) | ≤ 1.2× |\n",
			r.Concurrency, r.Ratio, r.CompleteMs, r.BareMs, r.CaddyCPUus)
	}
	return b.String()
}
