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
	"syscall"
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

// benchBacklog writes n due events into a new store directory without
// syncing (loading test data only), and returns the directory and the
// events as stored: the dispatcher reopens the directory with synced
// writes, and the raw loop sends these very events.
func benchBacklog(b *testing.B, n int, prefix string) (string, []store.Event) {
	dir := b.TempDir()
	db, err := store.OpenBadgerUnsynced(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	benchEvents(b, db, n, prefix)
	evs, err := db.Events(context.Background(), store.DeliveryPending, "", n)
	if err != nil || len(evs) != n {
		b.Fatalf("%d events listed of %d: %v", len(evs), n, err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	return dir, evs
}

// benchConcurrency is the POSTs in flight to the receiver, in both the
// raw loop and the dispatcher (its PerEndpoint bound).
const benchConcurrency = 16

// rawPosts sends every event once with benchConcurrency workers: signed
// the way the dispatcher signs, nothing stored.
func rawPosts(b *testing.B, s *Sender, ep *Endpoint, evs []store.Event) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < benchConcurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(evs)); i = next.Add(1) - 1 {
				if r := s.Send(context.Background(), ep, &evs[i]); r.Outcome != Delivered {
					b.Error(r.Err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// dispatchAll runs a dispatcher on the store in dir until every event in
// it is delivered and recorded durably, and returns how long that took,
// in wall and in CPU time.
func dispatchAll(b *testing.B, dir string, ep *Endpoint, got *atomic.Int64, n int) (time.Duration, time.Duration) {
	db, err := store.OpenBadger(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	got.Store(0)
	eps := map[string]*Endpoint{"p": ep}
	d := &Dispatcher{Store: db, PerEndpoint: benchConcurrency,
		Endpoints: func(p string) (*Endpoint, Lookup) { return eps[p], Ready }}
	b.StartTimer()
	start, c := time.Now(), cpuTime()
	d.Start()
	// Every event received, then every record durable (the pending
	// counter drops once its record is): the first wait reads an atomic
	// only, so the measurement adds no store reads while events flow.
	for got.Load() < int64(n) {
		time.Sleep(200 * time.Microsecond)
	}
	for {
		if pending, _, _ := db.OutboxStats(context.Background()); pending == 0 {
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	took, cpu := time.Since(start), cpuTime()-c
	b.StopTimer()
	d.Stop(time.Second)
	if got.Load() < int64(n) {
		b.Fatalf("%d of %d delivered", got.Load(), n)
	}
	return took, cpu
}

// cpuTime is the CPU time (user + system) this process has used so far:
// the receiver's share is in it on both sides of the comparison.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDeliveryThroughput delivers a backlog of events to a local
// receiver and reports events/s, against a baseline in the same run: the
// same events, signed and sent the same way (Sender.Send), with the same
// concurrency, to the same receiver, nothing stored. The dispatcher
// sub-benchmark also runs a raw round before each of its rounds and
// reports the ratio of the two (x-raw), alternating A/B on a noisy machine.
func BenchmarkDeliveryThroughput(b *testing.B) {
	const backlog = 2000
	var got atomic.Int64
	srv := benchReceiver(b, func() { got.Add(1) })
	ep := endpoint(srv.URL)
	b.Run("baseline-raw-post", func(b *testing.B) {
		_, evs := benchBacklog(b, backlog, "raw-")
		s := NewSender()
		b.ResetTimer()
		for b.Loop() {
			rawPosts(b, s, ep, evs)
		}
		b.ReportMetric(float64(backlog*b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("dispatcher", func(b *testing.B) {
		var total, raw, cpu, rawCPU time.Duration
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			dir, evs := benchBacklog(b, backlog, fmt.Sprintf("r%d-", i))
			start, c := time.Now(), cpuTime()
			rawPosts(b, NewSender(), ep, evs)
			raw += time.Since(start)
			rawCPU += cpuTime() - c
			took, c := dispatchAll(b, dir, ep, &got, backlog)
			total += took
			cpu += c
			b.StartTimer()
		}
		n := float64(backlog * b.N)
		b.ReportMetric(n/total.Seconds(), "events/s")
		b.ReportMetric(n/raw.Seconds(), "raw-events/s")
		b.ReportMetric(raw.Seconds()/total.Seconds(), "x-raw")
		// CPU per event, both sides in this process (sender and receiver):
		// steadier than wall time on a shared machine.
		b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-us/event")
		b.ReportMetric(float64(rawCPU.Microseconds())/n, "raw-cpu-us/event")
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
