package main

import (
	"strconv"
	"strings"
)

// DispatcherBench is the webhook dispatcher's target (issue 12, item 4),
// read from BenchmarkDeliveryThroughput/dispatcher in the Go benchmark
// lines: the dispatcher's rate and the raw POST loop's, measured in
// alternating rounds of one process, their ratio, and CPU per event.
type DispatcherBench struct {
	EventsPerSec    float64 `json:"events_per_s"`
	RawEventsPerSec float64 `json:"raw_events_per_s"`
	Ratio           float64 `json:"ratio_over_raw"`
	CPUus           float64 `json:"cpu_us_per_event"`
	RawCPUus        float64 `json:"raw_cpu_us_per_event"`
	AllocsPerRound  float64 `json:"allocs_per_round"`
}

// dispatcherFromGoBench finds the dispatcher's line among the benchmark
// lines (nil if absent).
func dispatcherFromGoBench(lines []string) *DispatcherBench {
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || !strings.HasPrefix(f[0], "BenchmarkDeliveryThroughput/dispatcher") {
			continue
		}
		var d DispatcherBench
		// After the name and the iteration count come value-unit pairs.
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "events/s":
				d.EventsPerSec = v
			case "raw-events/s":
				d.RawEventsPerSec = v
			case "x-raw":
				d.Ratio = v
			case "cpu-us/event":
				d.CPUus = v
			case "raw-cpu-us/event":
				d.RawCPUus = v
			case "allocs/op":
				d.AllocsPerRound = v
			}
		}
		return &d
	}
	return nil
}
