package main

import (
	"strings"
	"testing"
)

func TestParseSweep(t *testing.T) {
	lines := []string{
		"BenchmarkSweep100k/bare-s3-2 1 7056099300 ns/op 1400 intents/s 538835776 B/op 6472471 allocs/op",
		"BenchmarkSweep100k/bare-s3-lean-2 1 7056099300 ns/op 2100 intents/s 538835776 B/op 6472471 allocs/op",
		"BenchmarkSweep100k/sweep-2 1 7452787028 ns/op 33293 B/intent 323.0 allocs/intent 1050 intents/s 111.7 peak-heap-MiB 0.75 vs-bare-s3 332929672 B/op 3230483 allocs/op",
		"BenchmarkOther-2 10 5 ns/op",
	}
	r := parseSweep(lines)
	if r == nil || r.BareS3PerSec != 1400 || r.SweepPerSec != 1050 || r.OverBareS3 != 0.75 || r.LeanS3PerSec != 2100 || r.OverLeanS3 != 0.5 || r.PeakHeapMiB != 111.7 ||
		r.BytesPerIntent != 33293 || r.AllocsPer != 323 {
		t.Fatalf("%+v", r)
	}
	if parseSweep(lines[3:]) != nil || parseSweep(strings.Fields("")) != nil {
		t.Fatal("found a sweep where none ran")
	}
}
