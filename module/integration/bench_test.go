package integration

import (
	"net/http"
	"sort"
	"testing"
	"time"
)

// BenchmarkCompleteToReceipt measures, through the Caddy binary, the time
// from a client's `complete` call (ranged GET of the staging object, its
// conditional copy to the final key, the transition, the first webhook attempt) to the
// backend's receipt of the signed webhook.
func BenchmarkCompleteToReceipt(b *testing.B) {
	rc := newHookReceiver(b)
	rc.received = make(chan hookDelivery, 16)
	h := newHooks(b, rc.srv.URL)
	var lat []time.Duration
	for b.Loop() {
		b.StopTimer()
		id := h.uploaded(b, false)
		b.StartTimer()
		start := time.Now()
		req, _ := http.NewRequest("POST", h.url+"/"+id+"/complete", nil)
		req.Header.Set(carol[0], carol[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		for d := range rc.received {
			if d.IntentID == id {
				lat = append(lat, time.Since(start))
				break
			}
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
