// Package metrics holds the plugin's Prometheus collectors. They are
// created once per process and registered into each config's registry
// (Caddy makes a fresh registry on every reload), so counts survive
// reloads.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

const ns = "direct_upload"

// The collectors. Labels: profile, status (completed, rejected, failed,
// expired), op (head, get, delete, presign), outcome (delivered, retry,
// dead, skipped), result (unchanged, replaced, rejected, orphan_deleted,
// gone, error), kind (intent, event).
var (
	IntentsCreated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "intents_created_total", Help: "Upload intents granted.",
	}, []string{"profile"})
	IntentsFinalized = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "intents_finalized_total", Help: "Intent transitions, by the status reached.",
	}, []string{"profile", "status"})
	PresignSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Name: "presign_duration_seconds", Help: "Time to grant an upload (policy and durable intent).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
	}, []string{"profile"})
	CompleteSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Name: "complete_duration_seconds", Help: "Time to verify an object and record the outcome.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"profile"})
	S3Errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "s3_errors_total", Help: "Failed S3 calls (nothing is decided on them).",
	}, []string{"profile", "op"})
	Deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "webhook_deliveries_total", Help: "Webhook delivery attempts, by outcome.",
	}, []string{"profile", "outcome"})
	Rechecks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "rechecks_total", Help: "Post-expiry re-checks of finalized intents, by result.",
	}, []string{"profile", "result"})
	Pruned = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "intents_pruned_total", Help: "Settled intents removed after their retention.",
	})
	DamagedRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "store_damaged_records_total",
		Help: "Records of the store found unreadable (each counted once per process) and skipped.",
	}, []string{"kind"})
)

// All lists every collector above.
var All = []prometheus.Collector{IntentsCreated, IntentsFinalized, PresignSeconds, CompleteSeconds, S3Errors, Deliveries, Rechecks, Pruned, DamagedRecords}

// Register adds collectors to reg, accepting ones already there.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}
