package upload

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"
)

func TestZZAB(t *testing.T) {
	svc, p := benchPromoting(t)
	ins := benchUploads(t, svc, p, 400)
	ctx := context.Background()
	var a, b []time.Duration
	for i, in := range ins {
		t0 := time.Now()
		if i%2 == 0 {
			if err := bareComplete(ctx, p, in); err != nil {
				t.Fatal(err)
			}
			a = append(a, time.Since(t0))
		} else {
			if _, err := svc.Complete(ctx, p, "alice", in.ID, nil); err != nil {
				t.Fatal(err)
			}
			b = append(b, time.Since(t0))
		}
	}
	svc.Wait()
	med := func(d []time.Duration) time.Duration { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }); return d[len(d)/2] }
	fmt.Printf("bare %v complete %v ratio %.2f\n", med(a), med(b), float64(med(b))/float64(med(a)))
}
