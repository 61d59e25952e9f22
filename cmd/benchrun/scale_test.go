package main

import "testing"

func TestParseCount(t *testing.T) {
	for in, want := range map[string]int{"1k": 1000, "100k": 100_000, "1M": 1_000_000, " 250 ": 250, "": 0} {
		if got, err := parseCount(in); err != nil || got != want {
			t.Errorf("parseCount(%q) = %d, %v; want %d", in, got, err, want)
		}
		if want > 0 && countLabel(want) != map[int]string{1000: "1k", 100_000: "100k", 1_000_000: "1M", 250: "250"}[want] {
			t.Errorf("countLabel(%d) = %q", want, countLabel(want))
		}
	}
	if _, err := parseCount("x1k"); err == nil {
		t.Error("parseCount(x1k): no error")
	}
}
