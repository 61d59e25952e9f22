package upload

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// BenchmarkCompletePromoted is Service.Complete under promotion (real
// versitygw, synced Badger on disk) against the bare S3 calls it makes
// for a valid upload (ranged GET, conditional copy, delete) through the
// same bucket client, at 1 and 32 concurrent calls. ns/op is wall time
// per call divided by the concurrency's throughput; compare the pairs.
func BenchmarkCompletePromoted(b *testing.B) {
	for _, c := range []int{1, 32} {
		for _, bare := range []bool{true, false} {
			name := "complete"
			if bare {
				name = "bare"
			}
			b.Run(fmt.Sprintf("c=%d/%s", c, name), func(b *testing.B) {
				svc, p := benchPromoting(b)
				ids := benchUploads(b, svc, p, b.N)
				ctx := context.Background()
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ReportAllocs()
				cpu0 := processCPU()
				b.ResetTimer()
				for w := 0; w < c; w++ {
					wg.Go(func() {
						for i := int(next.Add(1) - 1); i < len(ids); i = int(next.Add(1) - 1) {
							var err error
							if bare {
								err = bareComplete(ctx, p, ids[i])
							} else {
								var in *store.Intent
								in, err = svc.Complete(ctx, p, "alice", ids[i].ID, nil)
								if err == nil && in.Status != store.StatusCompleted {
									err = fmt.Errorf("status %s", in.Status)
								}
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				if !bare {
					svc.Wait() // the staging deletions after the answers count too
				}
				b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
			})
		}
	}
}

// processCPU is this process's CPU time so far (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bareComplete makes the S3 calls Complete makes for a valid promoted
// upload, through the same client.
func bareComplete(ctx context.Context, p *Profile, in *store.Intent) error {
	obj, _, err := p.Objects.Inspect(ctx, in.StagingKey, sniff.DimsLen)
	if err != nil {
		return err
	}
	if _, err := p.Objects.Copy(ctx, in.StagingKey, in.Key, obj.ETag, obj.Size, false); err != nil {
		return err
	}
	return p.Objects.Delete(ctx, in.StagingKey)
}

func benchPromoting(b testing.TB) (*Service, *Profile) {
	db, err := store.OpenBadger(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	objs, err := bucket.New(context.Background(), bucket.Config{
		Bucket: "uploads", Region: s3srv.Region, Endpoint: s3srv.URL, PathStyle: true,
		AccessKeyID: s3srv.AccessKey, SecretAccessKey: s3srv.SecretKey,
	})
	if err != nil {
		b.Fatal(err)
	}
	key, _ := ParseKeyTemplate("bench/{id}{ext}")
	return NewService(db, nil), &Profile{
		Name: "bench", Objects: objs, Key: key, MaxSize: 1 << 20, Expires: 5 * time.Minute, MaxMetadata: 1024,
		Allowed: map[string]sniff.Type{"image/png": sniff.TypeOf("image/png")}, StagingPrefix: "staging/",
	}
}

// benchUploads grants and uploads n PNGs, eight at a time.
func benchUploads(b testing.TB, svc *Service, p *Profile, n int) []*store.Intent {
	ins := make([]*store.Intent, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				g, err := svc.Create(context.Background(), p, "alice", CreateRequest{ContentType: "image/png", Size: int64(len(pngBytes))})
				if err != nil {
					b.Error(err)
					return
				}
				if status, body, err := testkit.PostForm(g.URL, g.Fields, "image/png", pngBytes); err != nil || status != 201 {
					b.Errorf("upload: %d %v %s", status, err, body)
					return
				}
				ins[i] = g.Intent
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return ins
}
