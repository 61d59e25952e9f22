package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// goBench is one parsed line of `go test -bench` output: the benchmark's
// name without the -GOMAXPROCS suffix and its figures by unit (ns/op,
// B/op, allocs/op and whatever the benchmark reports).
type goBench struct {
	Name    string
	Metrics map[string]float64
}

// goBenches is a run's benchmarks by name.
type goBenches map[string]goBench

// parseGoBench reads the benchmark lines of `go test -bench` output.
func parseGoBench(lines []string) goBenches {
	out := goBenches{}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		g := goBench{Name: name, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			g.Metrics[f[i+1]] = v
		}
		out[name] = g
	}
	return out
}

// metric is one figure of a parsed benchmark, and whether it was there.
func (m goBenches) metric(name, unit string) (float64, bool) {
	g, ok := m[name]
	if !ok {
		return 0, false
	}
	v, ok := g.Metrics[unit]
	return v, ok
}

// Target is one row of the targets, met or not, from this run.
type Target struct {
	Measure string  `json:"measure"`
	Value   float64 `json:"value"`
	Shown   string  `json:"shown"`
	Goal    string  `json:"goal"`
	Met     bool    `json:"met"`
	Missing bool    `json:"missing,omitempty"`
	// Info rows carry a figure the issue asks for without a goal.
	Info bool `json:"info,omitempty"`
}

func info(measure, shown string) Target {
	return Target{Measure: measure, Shown: shown, Goal: "(reported)", Info: true}
}

// atMost and atLeast build a target row; shown is the figure as printed
// (with what it is a ratio of).
func atMost(measure string, v, goal float64, shown, goalText string) Target {
	return Target{Measure: measure, Value: v, Shown: shown, Goal: goalText, Met: v <= goal}
}

func atLeast(measure string, v, goal float64, shown, goalText string) Target {
	return Target{Measure: measure, Value: v, Shown: shown, Goal: goalText, Met: v >= goal}
}

func missing(measure, goal string) Target {
	return Target{Measure: measure, Goal: goal, Shown: "not measured in this run", Missing: true}
}

// targetsOf is the targets as this run measured them: the HTTP
// rounds, and the Go benchmarks of the same `make bench`.
func targetsOf(r Results) []Target {
	gb := parseGoBench(r.GoBench)
	var t []Target
	if r.Ceiling.RPS > 0 {
		t = append(t, atLeast("grant with a durable intent / Caddy `respond` ceiling (best rounds)", r.RatioRPS, 0.45,
			fmt.Sprintf("%.2f× (%.0f vs %.0f req/s)", r.RatioRPS, r.Presign.RPS, r.Ceiling.RPS), "≥ 0.45×"))
		t = append(t, atMost("Caddy CPU per grant (best grant round)", r.Presign.CaddyCPUus, 75,
			fmt.Sprintf("%.1f µs (respond: %.1f µs)", r.Presign.CaddyCPUus, r.Ceiling.CaddyCPUus), "≤ 75 µs"))
	}
	if g, ok := gb.metric("BenchmarkGrantHandler/grant", "allocs/op"); ok {
		h, _ := gb.metric("BenchmarkGrantHandler/harness", "allocs/op")
		t = append(t, atMost("allocations per grant, whole handler in process (test harness subtracted)", g-h, 60,
			fmt.Sprintf("%.0f (%.0f − %.0f harness)", g-h, g, h), "≤ 60"))
	} else {
		t = append(t, missing("allocations per grant, whole handler in process", "≤ 60"))
	}
	t = append(t, r.CompleteTargets...)
	sw, okS := gb.metric("BenchmarkSweep100k/sweep", "intents/s")
	bare, okB := gb.metric("BenchmarkSweep100k/bare-s3", "intents/s")
	if lean, ok := gb.metric("BenchmarkSweep100k/bare-s3-lean", "intents/s"); okS && ok && lean > 0 {
		// The calls made the way the sweep makes them (no SDK middleware):
		// the stricter baseline; the SDK's in brackets.
		shown := fmt.Sprintf("%.2f× (%.0f vs %.0f intents/s)", sw/lean, sw, lean)
		if okB && bare > 0 {
			shown += fmt.Sprintf("; %.2f× the SDK's calls (%.0f/s)", sw/bare, bare)
		}
		t = append(t, atLeast("sweeping 100k expired intents / the bare S3 calls it makes, same concurrency", sw/lean, 0.5, shown, "≥ 0.5×"))
	} else if okS && okB && bare > 0 {
		t = append(t, atLeast("sweeping 100k expired intents / the bare S3 calls it makes, same concurrency", sw/bare, 0.5,
			fmt.Sprintf("%.2f× (%.0f vs %.0f intents/s)", sw/bare, sw, bare), "≥ 0.5×"))
	} else {
		t = append(t, missing("sweeping 100k expired intents / the bare S3 calls it makes", "≥ 0.5×"))
	}
	if v, ok := gb.metric("BenchmarkSweep100k/sweep", "peak-heap-MiB"); ok {
		t = append(t, atMost("peak Go heap while sweeping 100k expired intents", v, 64, fmt.Sprintf("%.1f MiB", v), "≤ 64 MiB"))
	} else {
		t = append(t, missing("peak Go heap while sweeping 100k expired intents", "≤ 64 MiB"))
	}
	if v, ok := gb.metric("BenchmarkSweep100k/sweep", "B/intent"); ok {
		t = append(t, atMost("allocations per swept intent", v, 10*1000, fmt.Sprintf("%.1f KB", v/1000), "≤ 10 KB"))
	} else {
		t = append(t, missing("allocations per swept intent", "≤ 10 KB"))
	}
	d, okD := gb.metric("BenchmarkDeliveryThroughput/dispatcher", "events/s")
	raw, okR := gb.metric("BenchmarkDeliveryThroughput/baseline-raw-post", "events/s")
	if x, ok := gb.metric("BenchmarkDeliveryThroughput/dispatcher", "x-raw"); okD && ok {
		// The ratio of alternating rounds inside the dispatcher's own
		// sub-benchmark (a raw round before each dispatcher round).
		rr, _ := gb.metric("BenchmarkDeliveryThroughput/dispatcher", "raw-events/s")
		t = append(t, atLeast("webhook dispatcher / a raw signed POST loop, same events, receiver and concurrency (alternating rounds)", x, 0.5,
			fmt.Sprintf("%.2f× (%.0f vs %.0f events/s)", x, d, rr), "≥ 0.5×"))
	} else if okD && okR && raw > 0 {
		t = append(t, atLeast("webhook dispatcher / a raw signed POST loop, same receiver and concurrency", d/raw, 0.5,
			fmt.Sprintf("%.2f× (%.0f vs %.0f events/s)", d/raw, d, raw), "≥ 0.5×"))
	} else {
		t = append(t, missing("webhook dispatcher / a raw POST loop", "≥ 0.5×"))
	}
	if r.RSSMiB > 0 {
		shown := fmt.Sprintf("%.1f MiB (%.0f MB; live heap after GC %.1f MiB)", r.RSSMiB, r.RSSMiB*1.048576, r.LiveHeapMiB)
		if m := r.Memory; m.SettledSecs > 0 {
			shown = fmt.Sprintf("%.1f MiB (%.0f MB) once Caddy was idle, %.0f s after the burst; %.1f MiB 10 s after it; live heap after GC %.1f MiB",
				r.RSSMiB, r.RSSMiB*1.048576, m.SettledSecs, m.RSS10sMiB, r.LiveHeapMiB)
		}
		t = append(t, atMost(fmt.Sprintf("RSS with %d pending intents after the burst, default settings", r.PendingIntents), r.RSSMiB*1.048576, 100, shown, "≤ 100 MB"))
	}
	if m := r.MemoryLimited; m != nil && m.RSSMiB > 0 {
		t = append(t, info(fmt.Sprintf("the same with GOMEMLIMIT=%s (an operator setting)", m.MemLimit),
			fmt.Sprintf("%.1f MiB (peak during the burst %.1f MiB; without it %.1f MiB)", m.RSSMiB, m.PeakRSSMiB, r.Memory.PeakRSSMiB)))
	}
	t = append(t, scaleTargets(r.Scale)...)
	return t
}

// targetsMarkdown is the targets table.
func targetsMarkdown(ts []Target) string {
	var b bytes.Buffer
	b.WriteString("| target | this run | goal | met |\n|---|---:|---:|:---:|\n")
	for _, x := range ts {
		met := "no"
		switch {
		case x.Info:
			met = ""
		case x.Missing:
			met = "—"
		case x.Met:
			met = "**yes**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", x.Measure, x.Shown, x.Goal, met)
	}
	return b.String()
}

// scaleTargets is the scale curve's rows: the best grant rate with the
// most intents stored against the fewest (the store must not slow down as
// it grows; 0.8× leaves room for this machine's noise), p99 at each size,
// and the disk per settled intent before and after pruning.
func scaleTargets(sc *Scale) []Target {
	if sc == nil || len(sc.Points) == 0 {
		return []Target{missing("grants/s with the most intents stored / with the fewest", "≥ 0.8×")}
	}
	var t []Target
	first, last := sc.Points[0], sc.Points[len(sc.Points)-1]
	if len(sc.Points) > 1 && first.Best.RPS > 0 {
		ratio := last.Best.RPS / first.Best.RPS
		t = append(t, atLeast(fmt.Sprintf("grants/s with %s intents stored / with %s (best rounds)", countLabel(last.Stored), countLabel(first.Stored)), ratio, 0.8,
			fmt.Sprintf("%.2f× (%.0f vs %.0f req/s)", ratio, last.Best.RPS, first.Best.RPS), "≥ 0.8×"))
	}
	var curve []string
	for _, p := range sc.Points {
		curve = append(curve, fmt.Sprintf("%s: %.0f req/s, p99 %.1f ms", countLabel(p.Stored), p.Best.RPS, p.Best.P99ms))
	}
	t = append(t, info("scale curve (best round at each size)", strings.Join(curve, "; ")))
	if d := sc.Disk; d != nil && d.Settled > 0 {
		t = append(t, info("disk per settled intent, before pruning", fmt.Sprintf("%.0f bytes", d.BytesPerSettled)))
		t = append(t, info("left per pruned intent once the value log is collected and new traffic compacted", fmt.Sprintf("%.0f bytes", d.ResiduePerPruned)))
	}
	return t
}
