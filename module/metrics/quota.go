package metrics

import "github.com/prometheus/client_golang/prometheus"

// GrantsRefused counts grants refused by a quota or the rate limit, by
// reason: rate, max_pending, max_reserved or max_verified.
var GrantsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: ns, Name: "grants_refused_total", Help: "Grants refused by a per-identity quota or rate limit, by reason.",
}, []string{"profile", "reason"})

func init() { All = append(All, GrantsRefused) }
