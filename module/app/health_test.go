package app

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/doctor"
)

// TestStartupChecksRetryAndStop: a failing check is retried, shows in
// Health with its fix, and stopChecks ends the retries promptly.
func TestStartupChecksRetryAndStop(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := fmt.Sprintf("http://%s", l.Addr())
	l.Close() // nothing listens there now
	old := HealthRetryMin
	HealthRetryMin = 10 * time.Millisecond
	defer func() { HealthRetryMin = old }()

	a := &App{logger: zap.NewNop()}
	a.RegisterChecks(doctor.Target{Profile: "p", Bucket: bucket.Config{
		Bucket: "b", Region: "us-east-1", Endpoint: closed, PathStyle: true, AccessKeyID: "k", SecretAccessKey: "s",
	}})
	if h := a.Health()["p"]; h.OK || h.Runs != 0 {
		t.Fatalf("before start: %+v", h)
	}
	a.startChecks()
	deadline := time.Now().Add(30 * time.Second)
	for a.Health()["p"].Runs < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no retries: %+v", a.Health()["p"])
		}
		time.Sleep(5 * time.Millisecond)
	}
	h := a.Health()["p"]
	b := h.Checks[2]
	if h.OK || b.Check != doctor.CheckBucket || b.Status != doctor.Fail || !strings.Contains(b.Fix, "fix endpoint") || h.NextRun.IsZero() {
		t.Fatalf("health: %+v", h)
	}
	done := make(chan struct{})
	go func() { a.stopChecks(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("stopChecks did not return")
	}
}
