package main

import (
	"strings"
	"testing"
)

func TestParseGoBenchAndTargets(t *testing.T) {
	lines := []string{
		"BenchmarkGrantHandler/harness-2 100000 5000 ns/op 5700 B/op 17 allocs/op",
		"BenchmarkGrantHandler/grant-2 50000 40000 ns/op 17000 B/op 75 allocs/op 41000 cpu-ns/op",
		"BenchmarkSweep100k/bare-s3-2 1 1000 ns/op 4000 intents/s",
		"BenchmarkSweep100k/sweep-2 1 2000 ns/op 2500 intents/s 40.5 peak-heap-MiB 9000 B/intent",
		"BenchmarkDeliveryThroughput/baseline-raw-post-2 14 78824327 ns/op 25373 events/s",
		"BenchmarkDeliveryThroughput/dispatcher-2 2 502548029 ns/op 3980 events/s",
		"PASS",
	}
	gb := parseGoBench(lines)
	if v, ok := gb.metric("BenchmarkGrantHandler/grant", "cpu-ns/op"); !ok || v != 41000 {
		t.Fatalf("cpu-ns/op = %v %v", v, ok)
	}
	ts := targetsOf(Results{GoBench: lines, RSSMiB: 120, PendingIntents: 100000})
	want := map[string]bool{
		"allocations per grant, whole handler in process (test harness subtracted)":    true,  // 58
		"sweeping 100k expired intents / the bare S3 calls it makes, same concurrency": true,  // 0.625
		"peak Go heap while sweeping 100k expired intents":                             true,  // 40.5
		"allocations per swept intent":                                                 true,  // 9 KB
		"webhook dispatcher / a raw signed POST loop, same receiver and concurrency":   false, // 0.16
		"RSS with 100000 pending intents after the burst, default settings":            false, // 126 MB
	}
	seen := 0
	for _, x := range ts {
		if met, ok := want[x.Measure]; ok {
			seen++
			if x.Met != met || x.Missing {
				t.Errorf("%s: met %v missing %v (%s), want met %v", x.Measure, x.Met, x.Missing, x.Shown, met)
			}
		}
	}
	if seen != len(want) {
		t.Fatalf("saw %d of %d targets: %+v", seen, len(want), ts)
	}
	// With the lean baseline too, the ratio is judged against it.
	lean := append([]string{"BenchmarkSweep100k/bare-s3-lean-2 1 1000 ns/op 6000 intents/s"}, lines...)
	for _, x := range targetsOf(Results{GoBench: lean, RSSMiB: 120, PendingIntents: 100000}) {
		if x.Measure == "sweeping 100k expired intents / the bare S3 calls it makes, same concurrency" && (x.Met || x.Value != 2500.0/6000) {
			t.Errorf("against the lean baseline: %+v", x)
		}
	}
	if md := targetsMarkdown(ts); len(md) == 0 {
		t.Fatal("empty table")
	}
}

func TestTargetsDispatcherAndScale(t *testing.T) {
	lines := []string{
		"BenchmarkDeliveryThroughput/baseline-raw-post-2 5 1 ns/op 30000 events/s",
		"BenchmarkDeliveryThroughput/dispatcher-2 5 1 ns/op 12000 events/s 24000 raw-events/s 0.5 x-raw",
	}
	sc := &Scale{Points: []ScalePoint{{Stored: 1000, Best: Round{RPS: 5000}}, {Stored: 1_000_000, Best: Round{RPS: 3500}}},
		Disk: &DiskMeasure{Settled: 10, BytesPerSettled: 454, ResiduePerPruned: 1}}
	var disp, scale, infos int
	for _, x := range targetsOf(Results{GoBench: lines, Scale: sc}) {
		switch {
		case strings.HasPrefix(x.Measure, "webhook dispatcher"):
			disp++
			// The in-run alternating ratio (0.5), not 12000/30000.
			if !x.Met || x.Value != 0.5 {
				t.Errorf("dispatcher: %+v", x)
			}
		case strings.HasPrefix(x.Measure, "grants/s with 1M"):
			scale++
			if x.Met || x.Value != 0.7 { // 3500/5000 < 0.8
				t.Errorf("scale: %+v", x)
			}
		case x.Info:
			infos++
		}
	}
	if disp != 1 || scale != 1 || infos != 3 {
		t.Fatalf("dispatcher rows %d, scale rows %d, info rows %d", disp, scale, infos)
	}
}
