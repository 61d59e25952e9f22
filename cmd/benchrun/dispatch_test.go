package main

import "testing"

func TestDispatcherFromGoBench(t *testing.T) {
	lines := []string{
		"BenchmarkDeliveryThroughput/baseline-raw-post-2 5 183413638 ns/op 10904 events/s 18681233 B/op 222478 allocs/op",
		"BenchmarkDeliveryThroughput/dispatcher-2 5 641614960 ns/op 144.9 cpu-us/event 3117 events/s 62.67 raw-cpu-us/event 7923 raw-events/s 0.3934 x-raw 57454358 B/op 481726 allocs/op",
	}
	d := dispatcherFromGoBench(lines)
	if d == nil || d.EventsPerSec != 3117 || d.RawEventsPerSec != 7923 || d.Ratio != 0.3934 || d.CPUus != 144.9 ||
		d.RawCPUus != 62.67 || d.AllocsPerRound != 481726 {
		t.Fatalf("parsed %+v", d)
	}
	if dispatcherFromGoBench(lines[:1]) != nil {
		t.Fatal("found a dispatcher line in the raw loop's")
	}
}
