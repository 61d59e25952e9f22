package metrics

import "github.com/prometheus/client_golang/prometheus"

// Scans counts malware scans by result: clean, found, refused (the
// scanner refused the stream), skipped (unreachable, fail-open) or
// pending (unreachable, fail-closed: the upload waits).
var Scans = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: ns, Name: "scans_total", Help: "Malware scans of uploads, by result.",
}, []string{"profile", "result"})

func init() { All = append(All, Scans) }
