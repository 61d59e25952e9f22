package main

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
	g, ok := parseGoBench(lines)["BenchmarkDeliveryThroughput/dispatcher"]
	if !ok {
		return nil
	}
	m := g.Metrics
	return &DispatcherBench{EventsPerSec: m["events/s"], RawEventsPerSec: m["raw-events/s"], Ratio: m["x-raw"],
		CPUus: m["cpu-us/event"], RawCPUus: m["raw-cpu-us/event"], AllocsPerRound: m["allocs/op"]}
}
