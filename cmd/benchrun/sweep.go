package main

import (
	"strconv"
	"strings"
)

// SweepResult is BenchmarkSweep100k's two sub-benchmarks, read from the
// Go benchmarks of the same run: the sweep's rate over the rate of its bare
// S3 calls (same versitygw, same concurrency), its peak Go heap and its
// allocations per swept intent.
type SweepResult struct {
	BareS3PerSec   float64 `json:"bare_s3_intents_per_s"`
	LeanS3PerSec   float64 `json:"bare_s3_lean_intents_per_s"` // the calls as the sweep makes them
	OverLeanS3     float64 `json:"sweep_over_bare_s3_lean"`
	SweepPerSec    float64 `json:"sweep_intents_per_s"`
	OverBareS3     float64 `json:"sweep_over_bare_s3"`
	PeakHeapMiB    float64 `json:"peak_heap_mib"`
	BytesPerIntent float64 `json:"bytes_per_intent"`
	AllocsPer      float64 `json:"allocs_per_intent"`
}

// parseSweep finds BenchmarkSweep100k's lines among the Go benchmark
// lines (nil if it did not run).
func parseSweep(lines []string) *SweepResult {
	var r SweepResult
	found := false
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				m[f[i+1]] = v
			}
		}
		switch {
		case strings.HasPrefix(f[0], "BenchmarkSweep100k/bare-s3-lean"):
			r.LeanS3PerSec, found = m["intents/s"], true
		case strings.HasPrefix(f[0], "BenchmarkSweep100k/bare-s3"):
			r.BareS3PerSec, found = m["intents/s"], true
		case strings.HasPrefix(f[0], "BenchmarkSweep100k/sweep"):
			r.SweepPerSec, r.PeakHeapMiB, found = m["intents/s"], m["peak-heap-MiB"], true
			r.BytesPerIntent, r.AllocsPer = m["B/intent"], m["allocs/intent"]
		}
	}
	if !found {
		return nil
	}
	if r.BareS3PerSec > 0 {
		r.OverBareS3 = r.SweepPerSec / r.BareS3PerSec
	}
	if r.LeanS3PerSec > 0 {
		r.OverLeanS3 = r.SweepPerSec / r.LeanS3PerSec
	}
	return &r
}
