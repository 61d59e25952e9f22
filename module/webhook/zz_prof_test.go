package webhook

import (
	"fmt"
	"os"
	"runtime/pprof"
	"sync/atomic"
	"testing"
)

func BenchmarkZZDispatchOnly(b *testing.B) {
	const backlog = 2000
	var got atomic.Int64
	srv := benchReceiver(b, func() { got.Add(1) })
	ep := endpoint(srv.URL)
	f, _ := os.Create(os.Getenv("ZZPROF"))
	defer f.Close()
	var cpu, wall float64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		dir, _ := benchBacklog(b, backlog, fmt.Sprintf("r%d-", i))
		if i == 0 {
			pprof.StartCPUProfile(f)
		}
		w, c := dispatchAll(b, dir, ep, &got, backlog)
		cpu += c.Seconds()
		wall += w.Seconds()
		b.StartTimer()
	}
	pprof.StopCPUProfile()
	b.ReportMetric(cpu*1e6/float64(backlog*b.N), "cpu-us/event")
	b.ReportMetric(float64(backlog*b.N)/wall, "events/s")
}
