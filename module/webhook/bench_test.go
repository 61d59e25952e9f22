package webhook

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

func benchReceiver(b *testing.B, onReceive func()) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if onReceive != nil {
			onReceive()
		}
	}))
	b.Cleanup(srv.Close)
	return srv
}

func benchEvents(b *testing.B, db *store.Badger, n int, prefix string) {
	ctx := context.Background()
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s%07d", prefix, i)
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
}

// BenchmarkDeliveryThroughput delivers a backlog of events to a local
// receiver and reports events/s, against a baseline in the same run: the
// same signed POSTs with the same concurrency, nothing stored.
func BenchmarkDeliveryThroughput(b *testing.B) {
	const backlog = 2000
	b.Run("baseline-raw-post", func(b *testing.B) {
		srv := benchReceiver(b, nil)
		ep := endpoint(srv.URL)
		s := NewSender()
		ev := &store.Event{ID: "evt_x", Type: store.EventCompleted, CreatedAt: time.Now()}
		for b.Loop() {
			var wg sync.WaitGroup
			var next atomic.Int64
			for w := 0; w < 16; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= backlog {
						if r := s.Send(context.Background(), ep, ev); r.Outcome != Delivered {
							b.Error(r.Err)
							return
						}
					}
				}()
			}
			wg.Wait()
		}
		b.ReportMetric(float64(backlog*b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("dispatcher", func(b *testing.B) {
		var got atomic.Int64
		srv := benchReceiver(b, func() { got.Add(1) })
		var total time.Duration
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			db, err := store.OpenBadger(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			benchEvents(b, db, backlog, fmt.Sprintf("r%d-", i))
			got.Store(0)
			eps := map[string]*Endpoint{"p": endpoint(srv.URL)}
			d := &Dispatcher{Store: db, Endpoints: func(p string) (*Endpoint, Lookup) { return eps[p], Ready }}
			b.StartTimer()
			start := time.Now()
			d.Start()
			for {
				evs, _ := db.DueEvents(context.Background(), time.Now().Add(time.Hour), 1)
				if len(evs) == 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			total += time.Since(start)
			b.StopTimer()
			d.Stop(time.Second)
			db.Close()
			if got.Load() < backlog {
				b.Fatalf("%d of %d delivered", got.Load(), backlog)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(backlog*b.N)/total.Seconds(), "events/s")
	})
}

// BenchmarkTransitionToReceipt measures the latency from a transition
// being stored (what `complete` does) to the receiver holding the webhook.
func BenchmarkTransitionToReceipt(b *testing.B) {
	received := make(chan time.Time, 1)
	srv := benchReceiver(b, func() { received <- time.Now() })
	db, err := store.OpenBadger(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	eps := map[string]*Endpoint{"p": endpoint(srv.URL)}
	d := &Dispatcher{Store: db, Endpoints: func(p string) (*Endpoint, Lookup) { return eps[p], Ready }}
	d.Start()
	defer d.Stop(time.Second)
	ctx := context.Background()
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("lat%07d", i)
		now := time.Now().UTC()
		in := &store.Intent{ID: id, Profile: "p", Bucket: "b", Key: "k/" + id, ContentType: "image/png", MaxSize: 10,
			Status: store.StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := db.Create(ctx, in); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := db.Update(ctx, id, store.StatusPending, func(x *store.Intent) (store.Event, error) {
			x.Status = store.StatusCompleted
			return store.Event{ID: "evt_" + id, Type: store.EventCompleted, CreatedAt: now}, nil
		}); err != nil {
			b.Fatal(err)
		}
		d.Kick()
		lat = append(lat, (<-received).Sub(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
