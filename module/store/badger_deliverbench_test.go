package store_test

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

func storeCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBadgerDeliveryRecords is the store's share of the dispatcher's
// work, alone: a backlog of 2,000 due events (loaded unsynced, the store
// reopened with synced writes) claimed 80 at a time, as a dispatcher pass
// claims them, and recorded delivered in one SetDeliveries per claim,
// until none is due. It reports the CPU time (getrusage, the whole
// process) and allocations per event.
func BenchmarkBadgerDeliveryRecords(b *testing.B) {
	const n, perPass = 2000, 80
	ctx := context.Background()
	var cpu time.Duration
	var ms0, ms1 runtime.MemStats
	var mallocs uint64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		db, err := store.OpenBadgerUnsynced(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now().UTC()
		for j := 0; j < n; j++ {
			id := fmt.Sprintf("in%07d", j)
			in := &store.Intent{ID: id, Profile: "p", Bucket: "b", Key: "k/" + id, ContentType: "image/png", MaxSize: 10,
				Status: store.StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			if err := db.Create(ctx, in); err != nil {
				b.Fatal(err)
			}
			if _, err := db.Update(ctx, id, store.StatusPending, func(x *store.Intent) (store.Event, error) {
				x.Status = store.StatusCompleted
				return store.Event{ID: "evt_" + id, Type: store.EventCompleted, CreatedAt: now}, nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		db.Close()
		db, err = store.OpenBadger(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		c0 := storeCPU()
		b.StartTimer()
		done := 0
		for {
			at := time.Now()
			due, err := db.ClaimDue(ctx, "A", at, time.Minute, perPass)
			if err != nil {
				b.Fatal(err)
			}
			if len(due) == 0 {
				break
			}
			up := make(map[string]store.Delivery, len(due))
			for _, du := range due {
				ev := du.Event
				if ev == nil {
					if ev, err = db.Event(ctx, du.EventID); err != nil {
						b.Fatal(err)
					}
				}
				dl := ev.Delivery
				dl.Attempts++
				dl.State, dl.LastAttemptAt, dl.DeliveredAt, dl.NextAttemptAt, dl.LastStatus = store.DeliveryDelivered, at, at, time.Time{}, 200
				up[du.EventID] = dl
			}
			if err := db.SetDeliveries(ctx, up); err != nil {
				b.Fatal(err)
			}
			done += len(due)
		}
		b.StopTimer()
		cpu += storeCPU() - c0
		runtime.ReadMemStats(&ms1)
		mallocs += ms1.Mallocs - ms0.Mallocs
		if done != n {
			b.Fatalf("%d events recorded of %d", done, n)
		}
		db.Close()
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "cpu-us/event")
	b.ReportMetric(float64(mallocs)/float64(b.N*n), "allocs/event")
}
