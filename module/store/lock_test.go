package store

import (
	"strings"
	"testing"
)

// TestSecondOpenerRefused: Badger is for one process; a second opener of
// the same directory (another Caddy pointed at it) fails with an error
// that says so, and the first keeps working.
func TestSecondOpenerRefused(t *testing.T) {
	dir := t.TempDir()
	first, err := OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := OpenBadger(dir, nil)
	if err == nil {
		second.Close()
		t.Fatal("a second opener of the same directory was let in")
	}
	if !strings.Contains(err.Error(), "Another process is using this Badger database") {
		t.Fatalf("unclear error for a second opener: %v", err)
	}
	if _, _, err := first.OutboxStats(t.Context()); err != nil {
		t.Fatalf("the first opener stopped working: %v", err)
	}
}
