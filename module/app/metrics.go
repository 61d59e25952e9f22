package app

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
)

// collectors are every collector the app registers in a config's
// registry (docs/metrics.md lists their metrics).
func collectors() []prometheus.Collector {
	return slices.Concat(metrics.All, []prometheus.Collector{outboxCollector{}, StartupCheckOK})
}

// outboxCollector reports the outbox of the running store at scrape time:
// how many events wait for delivery, and for how long the oldest has.
type outboxCollector struct{}

var (
	outboxPendingDesc = prometheus.NewDesc("direct_upload_outbox_pending", "Webhook events not yet delivered.", nil, nil)
	outboxAgeDesc     = prometheus.NewDesc("direct_upload_outbox_oldest_age_seconds", "Age of the oldest undelivered webhook event (0 when none).", nil, nil)
)

func (outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxPendingDesc
	ch <- outboxAgeDesc
}

func (outboxCollector) Collect(ch chan<- prometheus.Metric) {
	a := running.Load()
	if a == nil {
		return
	}
	db, err := a.Store()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, oldest, err := db.OutboxStats(ctx)
	if err != nil {
		return
	}
	age := 0.0
	if !oldest.IsZero() {
		age = time.Since(oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(outboxPendingDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(outboxAgeDesc, prometheus.GaugeValue, age)
}
