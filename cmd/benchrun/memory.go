package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
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

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// Memory is what the Caddy process holds after a burst of grants left n
// intents pending: the figure the target is about (RSS after the burst, the
// garbage collector left to itself), and where it goes.
type Memory struct {
	// MemLimit is the GOMEMLIMIT Caddy ran with ("" for none).
	MemLimit string `json:"gomemlimit"`
	Pending  int    `json:"pending_intents"`
	// StartRSSMiB and StartAnonMiB are Caddy's RSS and its anonymous part
	// right after it started, before any load: the floor the rest adds to.
	StartRSSMiB  float64 `json:"start_rss_mib"`
	StartAnonMiB float64 `json:"start_anon_mib"`
	// GrantsPerSec is the burst's rate.
	GrantsPerSec float64 `json:"burst_grants_per_s"`

	// During the burst: the peak RSS (VmHWM) and the largest Go heap in use
	// seen by sampling Caddy's /metrics every 250 ms.
	PeakRSSMiB  float64 `json:"peak_rss_mib"`
	PeakHeapMiB float64 `json:"peak_heap_inuse_mib"`

	// After the burst and a pause, no forced GC: RSS from smaps_rollup,
	// split into anonymous memory (Go heap, stacks, Badger's arenas) and
	// file pages mapped in (Badger's mmapped tables and logs, the binary),
	// and the file pages by file kind.
	RSSMiB float64 `json:"rss_mib"`
	// SettledSecs is when RSSMiB was read, in seconds after the burst (when
	// Caddy went idle); RSS10sMiB is RSS 10 s after the burst, whether or
	// not the store's compactions had finished.
	SettledSecs float64            `json:"settled_after_s"`
	RSS10sMiB   float64            `json:"rss_10s_after_burst_mib"`
	AnonMiB     float64            `json:"anon_mib"`
	FileMiB     float64            `json:"file_mib"`
	FileBy      map[string]float64 `json:"file_mib_by_kind"`
	// The Go runtime's view at the same moment (runtime.MemStats through
	// Caddy's /metrics): heap spans in use, idle spans still held, idle
	// spans returned to the OS, goroutine stacks, and all memory the
	// runtime has mapped.
	HeapInuseMiB    float64 `json:"heap_inuse_mib"`
	HeapIdleMiB     float64 `json:"heap_idle_mib"`
	HeapReleasedMiB float64 `json:"heap_released_mib"`
	StackMiB        float64 `json:"stack_inuse_mib"`
	GoSysMiB        float64 `json:"go_sys_mib"`
	Goroutines      float64 `json:"goroutines"`

	// After a GC forced through pprof (reported apart, never as the
	// target's figure): the live heap, and RSS once the runtime had the
	// chance to return what the GC freed.
	LiveHeapMiB   float64 `json:"live_heap_after_gc_mib"`
	RSSAfterGCMiB float64 `json:"rss_after_gc_mib"`

	DiskBytesPer float64 `json:"disk_bytes_per_intent"`
}

var (
	burstHeap    = flag.String("burst-heap", "", "write Caddy's heap profile here halfway through the memory measure's grant burst")
	memLimitAlso = flag.String("memlimit-also", "64MiB", "also measure memory in a fresh Caddy run with this GOMEMLIMIT (empty: skip)")
)

// memoryWithLimit runs the memory measure again in a fresh Caddy on a
// fresh store, with GOMEMLIMIT=limit.
func memoryWithLimit(s3srv *testkit.Versity, tmp string, conns, n int, limit string) Memory {
	dir := filepath.Join(tmp, "memlimit-intents")
	defer os.RemoveAll(dir)
	caddy, admin, base := startBenchCaddy(s3srv, tmp, dir, "memlimit", "GOMEMLIMIT="+limit)
	defer caddy.Stop(10 * time.Second)
	rss, anon := smapsRollup(caddy.Pid())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns * 2, MaxConnsPerHost: conns * 2}}
	grant := grantRequest(base)
	load(client, grant, conns, time.Second, "warmup")
	m := memoryAndDisk(client, grant, conns, n, caddy.Pid(), admin, dir, limit)
	m.StartRSSMiB, m.StartAnonMiB = rss, anon
	return m
}

// memoryAndDisk grants n uploads (pending intents) as fast as conns
// connections go, then reads Caddy's memory (see Memory) and the store's
// disk use per intent.
func memoryAndDisk(client *http.Client, mk func() (*http.Request, error), conns, n, pid, admin int, dir, memLimit string) Memory {
	m := Memory{MemLimit: memLimit, Pending: n}
	before := diskUse(dir)
	stop := make(chan struct{})
	sampled := make(chan float64)
	go func() {
		peak := 0.0
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				sampled <- peak
				return
			case <-t.C:
				if v := goMetrics(admin)["go_memstats_heap_inuse_bytes"]; v > peak {
					peak = v
				}
			}
		}
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	var profiled sync.Once
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if *burstHeap != "" && i == int64(n/2) {
					profiled.Do(func() { saveProfile(admin, "heap", *burstHeap) })
				}
				req, _ := mk()
				resp, err := client.Do(req)
				check(err)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					log.Fatalf("grant: %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	m.GrantsPerSec = float64(n) / time.Since(t0).Seconds()
	close(stop)
	m.PeakHeapMiB = mib(<-sampled)
	m.PeakRSSMiB = procStatusMiB(pid, "VmHWM:")
	time.Sleep(10 * time.Second) // let the store flush and compact after the burst
	m.RSS10sMiB, _ = smapsRollup(pid)
	// After the burst means once the store has finished what the burst
	// left it (memtable flushes and compactions, which go on for a while
	// after the last write): Caddy idle, under 2% of a core over 2 s, for
	// at most another 50 s.
	m.SettledSecs = 10 + waitIdle(pid, 50*time.Second)

	rss, anon := smapsRollup(pid)
	m.RSSMiB, m.AnonMiB, m.FileMiB = rss, anon, rss-anon
	m.FileBy = fileRSSByKind(pid)
	g := goMetrics(admin)
	m.HeapInuseMiB = mib(g["go_memstats_heap_inuse_bytes"])
	m.HeapIdleMiB = mib(g["go_memstats_heap_idle_bytes"])
	m.HeapReleasedMiB = mib(g["go_memstats_heap_released_bytes"])
	m.StackMiB = mib(g["go_memstats_stack_inuse_bytes"])
	m.GoSysMiB = mib(g["go_memstats_sys_bytes"])
	m.Goroutines = g["go_goroutines"]
	m.DiskBytesPer = float64(diskUse(dir)-before) / float64(n)

	m.LiveHeapMiB = liveHeapMiB(admin)
	// The runtime's background scavenger returns freed spans to the OS
	// over a few seconds.
	time.Sleep(5 * time.Second)
	m.RSSAfterGCMiB, _ = smapsRollup(pid)
	return m
}

func (m Memory) String() string {
	kinds := make([]string, 0, len(m.FileBy))
	for _, k := range []string{"sst", "vlog", "mem", "binary", "other"} {
		if v, ok := m.FileBy[k]; ok {
			kinds = append(kinds, fmt.Sprintf("%s %.1f", k, v))
		}
	}
	lim := m.MemLimit
	if lim == "" {
		lim = "unset"
	}
	return fmt.Sprintf("%d pending intents, GOMEMLIMIT %s (RSS at start %.1f MiB, anon %.1f; burst %.0f grants/s, peak RSS %.1f MiB, peak heap in use %.1f MiB; RSS 10 s after the burst %.1f MiB, idle after %.0f s): RSS %.1f MiB = anon %.1f + file %.1f (%s); Go heap in use %.1f, idle %.1f (released %.1f), stacks %.1f, runtime total %.1f MiB, %.0f goroutines; after a forced GC: live heap %.1f MiB, RSS %.1f MiB; %.0f bytes of disk per intent",
		m.Pending, lim, m.StartRSSMiB, m.StartAnonMiB, m.GrantsPerSec, m.PeakRSSMiB, m.PeakHeapMiB, m.RSS10sMiB, m.SettledSecs, m.RSSMiB, m.AnonMiB, m.FileMiB, strings.Join(kinds, ", "),
		m.HeapInuseMiB, m.HeapIdleMiB, m.HeapReleasedMiB, m.StackMiB, m.GoSysMiB, m.Goroutines, m.LiveHeapMiB, m.RSSAfterGCMiB, m.DiskBytesPer)
}

// liveHeapMiB forces a GC in Caddy (through its pprof endpoint) and reads
// the heap left: what the process really holds, garbage aside.
func liveHeapMiB(admin int) float64 {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1", admin))
	check(err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return mib(goMetrics(admin)["go_memstats_heap_alloc_bytes"])
}

// goMetrics reads the unlabelled go_* samples of Caddy's /metrics.
func goMetrics(admin int) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", admin))
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if ok && strings.HasPrefix(name, "go_") && !strings.Contains(name, "{") {
			f, _ := strconv.ParseFloat(v, 64)
			out[name] = f
		}
	}
	return out
}

func mib(b float64) float64 { return math.Round(b/(1<<20)*10) / 10 }

// smapsRollup is a process's RSS and its anonymous part, in MiB; the rest
// are file pages mapped in.
func smapsRollup(pid int) (rss, anon float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	check(err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := kbField(sc.Text(), "Rss:"); ok {
			rss = v
		}
		if v, ok := kbField(sc.Text(), "Anonymous:"); ok {
			anon = v
		}
	}
	return rss / 1024, anon / 1024
}

// fileRSSByKind sums the resident pages of a process's file mappings by
// kind: Badger's tables (sst), value log (vlog) and memtable logs (mem),
// the executable, other files.
func fileRSSByKind(pid int) map[string]float64 {
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	check(err)
	defer f.Close()
	out := map[string]float64{}
	kind := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			kind = ""
			if len(fields) >= 6 && strings.HasPrefix(fields[5], "/") {
				path := strings.Join(fields[5:], " ")
				switch ext := filepath.Ext(path); {
				case path == exe:
					kind = "binary"
				case ext == ".sst" || ext == ".vlog" || ext == ".mem":
					kind = ext[1:]
				default:
					kind = "other"
				}
			}
			continue
		}
		if v, ok := kbField(line, "Rss:"); ok && kind != "" {
			out[kind] += v / 1024
		}
	}
	for k, v := range out {
		out[k] = math.Round(v*10) / 10
	}
	return out
}

func kbField(line, name string) (float64, bool) {
	v, ok := strings.CutPrefix(line, name)
	if !ok {
		return 0, false
	}
	kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
	return kb, err == nil
}

func procStatusMiB(pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := kbField(sc.Text(), field); ok {
			return v / 1024
		}
	}
	return 0
}

// saveProfile writes one of Caddy's pprof profiles to file.
func saveProfile(admin int, name, file string) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/%s", admin, name))
	check(err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	check(err)
	check(os.WriteFile(file, data, 0o644))
}

// waitIdle waits until the process pid used under 2% of a core over 2 s,
// or max, and returns how long it waited in seconds.
func waitIdle(pid int, max time.Duration) float64 {
	t0 := time.Now()
	for time.Since(t0) < max {
		c0 := cpuTime(pid)
		time.Sleep(2 * time.Second)
		if cpuTime(pid)-c0 < 40*time.Millisecond {
			break
		}
	}
	return time.Since(t0).Seconds()
}
