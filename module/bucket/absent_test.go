package bucket

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// TestAbsentOnRealS3 checks the lean ranged GET against versitygw: its
// own SigV4 signature is accepted (keys with characters that need
// encoding included), an absent key is absent, a present one (empty or
// not) is not, and a missing bucket or a wrong secret is an error, never
// "absent".
func TestAbsentOnRealS3(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	v, err := testkit.StartVersity(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Stop(5 * time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := v.CreateBucket(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	open := func(bucket, secret string) *Bucket {
		b, err := New(ctx, Config{Bucket: bucket, Region: v.Region, Endpoint: v.URL, PathStyle: true,
			AccessKeyID: v.AccessKey, SecretAccessKey: secret})
		if err != nil {
			t.Fatal(err)
		}
		if b.absent == nil {
			t.Fatal("New built no lean checker")
		}
		return b
	}
	b := open("uploads", v.SecretKey)
	keys := []string{"a/b/plain.png", "sp ace/plus+and=eq!.png", "ünï/çødé~(1)*'.txt", "amp&semi;colon:at@.bin"}
	for i, k := range keys {
		body := "x"
		if i == 1 {
			body = "" // an empty object has no first byte
		}
		if _, err := v.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("uploads"), Key: aws.String(k), Body: strings.NewReader(body)}); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
	}
	for _, k := range keys {
		absent, err := b.Absent(ctx, k)
		if err != nil || absent {
			t.Errorf("Absent(%q) of a present object = %v, %v", k, absent, err)
		}
		absent, err = b.Absent(ctx, k+".missing")
		if err != nil || !absent {
			t.Errorf("Absent(%q) of a missing object = %v, %v", k+".missing", absent, err)
		}
	}
	if absent, err := open("no-such-bucket", v.SecretKey).Absent(ctx, "a/b/plain.png.missing"); err == nil || absent {
		t.Errorf("missing bucket: %v, %v; want an error", absent, err)
	}
	if absent, err := open("uploads", "wrong-secret").Absent(ctx, "a/b/plain.png.missing"); err == nil || absent {
		t.Errorf("wrong secret: %v, %v; want an error", absent, err)
	}
	// Without the lean checker (NewWith), the same answers through Inspect.
	sdk := NewWith("uploads", v.Client(), nil)
	if absent, err := sdk.Absent(ctx, keys[0]); err != nil || absent {
		t.Errorf("NewWith: present = %v, %v", absent, err)
	}
	if absent, err := sdk.Absent(ctx, keys[0]+".missing"); err != nil || !absent {
		t.Errorf("NewWith: missing = %v, %v", absent, err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := b.Absent(cctx, keys[0]); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}
