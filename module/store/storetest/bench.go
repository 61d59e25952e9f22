package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// BenchmarkCreate measures durable creates from many goroutines at once,
// as a loaded server's grants make them (group commit has company).
func BenchmarkCreate(b *testing.B, db store.Store) {
	ctx := context.Background()
	var n atomic.Int64
	exp := time.Now().Add(time.Hour)
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			in := pending(fmt.Sprintf("bench%09d", n.Add(1)), exp)
			if err := db.Create(ctx, in); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkUpdate measures transitions, each with its event, of one
// intent each, from many goroutines at once.
func BenchmarkUpdate(b *testing.B, db store.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				if err := db.Create(ctx, pending(fmt.Sprintf("upd%09d", i), exp)); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range b.N {
		work <- i
	}
	close(work)
	wg.Wait()
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("upd%09d", n.Add(1)-1)
			if _, err := db.Update(ctx, id, store.StatusPending, to(store.StatusCompleted, id+"-e", time.Now())); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
