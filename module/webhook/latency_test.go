package webhook

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// TestAttemptLatencyRecorded: the delivery record keeps how long the last
// attempt took, so the operator console can show it.
func TestAttemptLatencyRecorded(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		time.Sleep(40 * time.Millisecond)
	})
	f := newFixture(t, map[string]*Endpoint{"p": endpoint(rc.srv.URL)}, nil)
	id := f.complete(t, "p")
	ev := f.waitState(t, id, store.DeliveryDelivered, 10*time.Second)
	if ev.Delivery.LastLatencyMS < 40 {
		t.Fatalf("last_latency_ms = %v, want at least the receiver's 40 ms: %+v", ev.Delivery.LastLatencyMS, ev.Delivery)
	}
}
