package upload

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/doctor"
)

// TestCompleteStorageFailureHints: a profile whose bucket is missing (on
// the real S3 server) grants, but complete fails: the log names the S3
// error code and the fix; the client gets storage_error with a hint that
// names nothing of the bucket.
func TestCompleteStorageFailureHints(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	core, logs := observer.New(zapcore.WarnLevel)
	e.svc.Logger = zap.New(core)
	objs, err := bucket.New(context.Background(), bucket.Config{
		Bucket: "no-such-bucket", Region: s3srv.Region, Endpoint: s3srv.URL, PathStyle: true,
		AccessKeyID: s3srv.AccessKey, SecretAccessKey: s3srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.profile.Objects = objs
	g := e.grant(t, "image/png", int64(len(pngBytes)))

	_, err = e.svc.Complete(context.Background(), e.profile, "alice", g.Intent.ID, nil)
	var ue *Error
	if !errors.As(err, &ue) || ue.Code != "storage_error" || ue.Message != doctor.ClientMisconfigured {
		t.Fatalf("complete: %v", err)
	}
	if !errors.Is(err, ErrStorage) {
		t.Error("the error must still match ErrStorage (callers retry on it)")
	}
	if strings.Contains(ue.Message, "no-such-bucket") || strings.Contains(ue.Message, "127.0.0.1") {
		t.Errorf("the client's message leaks internals: %s", ue.Message)
	}
	found := false
	for _, l := range logs.All() {
		f := l.ContextMap()
		if l.Message == "verifying object failed; nothing decided" && f["s3_code"] == "NoSuchBucket" &&
			strings.Contains(f["fix"].(string), "the bucket does not exist: create it") {
			found = true
		}
	}
	if !found {
		t.Errorf("no log line with s3_code NoSuchBucket and its fix: %v", logs.All())
	}
}
