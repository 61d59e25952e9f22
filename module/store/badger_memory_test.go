package store

import (
	"context"
	"fmt"
	"runtime/debug"
	"testing"
	"time"
)

var sink [][]byte

// TestMemoryReturnedAfterBurst: after a burst of writes the store, once
// idle, has the runtime collect and return to the OS the heap the burst
// left behind; without it the garbage stays held until the next collection,
// which an idle process does not run.
func TestMemoryReturnedAfterBurst(t *testing.T) {
	oldTick, oldWrites, oldHeld := releaseTick, releaseMinWrites, releaseMinHeld
	releaseTick, releaseMinWrites, releaseMinHeld = 50*time.Millisecond, 20, 16<<20
	defer func() { releaseTick, releaseMinWrites, releaseMinHeld = oldTick, oldWrites, oldHeld }()
	db, err := OpenBadgerUnsynced(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	debug.FreeOSMemory() // a clean start: what earlier tests left, returned
	base, _, _ := goMemory()
	// The burst: writes, and 128 MiB of garbage such as a burst of
	// requests leaves, allocated with the collector off so no collection
	// reclaims it before the store goes idle.
	old := setGCPercent(-1)
	for i := range 64 {
		sink = append(sink, make([]byte, 2<<20))
		if err := db.Create(context.Background(), pending(fmt.Sprintf("a%03d", i), time.Unix(1000, 0))); err != nil {
			t.Fatal(err)
		}
	}
	sink = nil
	setGCPercent(old)
	burst, _, _ := goMemory()
	if burst < base+100<<20 {
		t.Fatalf("the burst left %d bytes held (%d before): the test holds no garbage", burst, base)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		held, _, _ := goMemory()
		if held < base+32<<20 {
			t.Logf("held %d bytes before, %d after the burst, %d once idle", base, burst, held)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("held %d bytes 30 s after the burst (%d before it, %d at its end)", held, base, burst)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func setGCPercent(p int) int { return debug.SetGCPercent(p) }
