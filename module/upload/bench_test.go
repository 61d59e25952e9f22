package upload

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

func benchProfile(b *testing.B) *Profile {
	objs, err := bucket.New(context.Background(), bucket.Config{
		Bucket: "uploads", Region: "us-east-1", Endpoint: "http://127.0.0.1:1", PathStyle: true,
		AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret",
	})
	if err != nil {
		b.Fatal(err)
	}
	key, _ := ParseKeyTemplate("{profile}/{year}/{month}/{day}/{id}{ext}")
	return &Profile{Name: "bench", Objects: objs, Key: key, MaxSize: 10 << 20, Expires: 5 * time.Minute, MaxMetadata: 4096,
		Allowed: map[string]sniff.Type{"image/png": sniff.TypeOf("image/png")}}
}

var benchReq = CreateRequest{Filename: "photo.png", ContentType: "image/png", Size: 123456, Metadata: []byte(`{"album":"holidays"}`)}

// BenchmarkPresignOnly is the baseline: minting the policy, nothing stored.
func BenchmarkPresignOnly(b *testing.B) {
	p := benchProfile(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Objects.PresignPost(ctx, bucket.Policy{Key: "k/" + NewID(), ContentType: "image/png", MinSize: 1, MaxSize: 100, Expires: time.Minute}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchService is a service over a synced Badger on disk, closed with b.
func benchService(b *testing.B) *Service {
	db, err := store.OpenBadger(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return NewService(db, nil)
}

// BenchmarkCreate is a whole grant: validation, policy, and the intent
// synced to Badger on disk, one request at a time.
func BenchmarkCreate(b *testing.B) {
	svc, p, ctx := benchService(b), benchProfile(b), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.Create(ctx, p, "alice", benchReq); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateParallel is the same with 32 concurrent requests, as a
// loaded server sees them.
func BenchmarkCreateParallel(b *testing.B) {
	svc, p, ctx := benchService(b), benchProfile(b), context.Background()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := svc.Create(ctx, p, "alice", benchReq); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
