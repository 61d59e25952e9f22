package upload

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// TestQuotaGrantCycle: a grant reserves its declared size; over a cap the
// grant is refused quota_exceeded naming the cap; complete replaces the
// reservation with the verified size, fail releases it; the cap is per
// identity, and grants without identity count per client IP.
func TestQuotaGrantCycle(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	e.profile.Limits = Limits{QuotaLimits: store.QuotaLimits{MaxPending: 2, MaxReserved: 100}}
	usage := func(subject string) store.Usage {
		t.Helper()
		u, err := e.db.Usage(ctx, "test", subject, time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	g1 := e.grant(t, "image/png", int64(len(pngBytes)))
	if _, err := e.svc.Create(ctx, e.profile, "alice", CreateRequest{ContentType: "image/png", Size: 80}); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("over max_reserved: %v", err)
	} else if ue := err.(*Error); ue.Message[:12] != "max_reserved" {
		t.Fatalf("message %q does not name the cap", ue.Message)
	}
	g2 := e.grant(t, "image/png", 10)
	if _, err := e.svc.Create(ctx, e.profile, "alice", CreateRequest{ContentType: "image/png", Size: 1}); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("over max_pending: %v", err)
	}
	if u := usage("alice"); u.Pending != 2 || u.Reserved != int64(len(pngBytes))+10 {
		t.Fatalf("usage %+v", u)
	}
	// Another identity, and an anonymous client by its IP, are not affected.
	if _, err := e.svc.Create(ctx, e.profile, "bob", CreateRequest{ContentType: "image/png", Size: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(WithClientIP(ctx, "192.0.2.7"), e.profile, "", CreateRequest{ContentType: "image/png", Size: 1}); err != nil {
		t.Fatal(err)
	}
	if u := usage("ip:192.0.2.7"); u.Pending != 1 {
		t.Fatalf("anonymous usage %+v", u)
	}
	post(t, g1, "image/png", pngBytes)
	if _, err := e.svc.Complete(ctx, e.profile, "alice", g1.Intent.ID, nil); err != nil {
		t.Fatal(err)
	}
	if u := usage("alice"); u.Pending != 1 || u.Reserved != 10 || u.Verified != int64(len(pngBytes)) {
		t.Fatalf("after complete: %+v", u)
	}
	if _, err := e.svc.Fail(ctx, e.profile, "alice", g2.Intent.ID, "cancelled"); err != nil {
		t.Fatal(err)
	}
	if u := usage("alice"); u.Pending != 0 || u.Reserved != 0 {
		t.Fatalf("after fail: %+v", u)
	}
	e.grant(t, "image/png", 50)
}

// TestRateLimitRefusesWithRetryAfter: a burst of N grants passes, the next
// is refused rate_limited with the wait for a token, which then frees.
func TestRateLimitRefusesWithRetryAfter(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	e.profile.Limits = Limits{Rate: Rate{N: 3, Per: time.Minute}}
	for range 3 {
		e.grant(t, "image/png", 1)
	}
	_, err := e.svc.Create(ctx, e.profile, "alice", CreateRequest{ContentType: "image/png", Size: 1})
	var ue *Error
	if !errors.As(err, &ue) || ue.Code != "rate_limited" || ue.RetryAfter <= 0 || ue.RetryAfter > 20*time.Second {
		t.Fatalf("fourth grant: %v (retry after %v)", err, ue)
	}
	if _, err := e.svc.Create(ctx, e.profile, "bob", CreateRequest{ContentType: "image/png", Size: 1}); err != nil {
		t.Fatalf("another identity: %v", err)
	}
	e.advance(ue.RetryAfter)
	e.grant(t, "image/png", 1)
}

// TestQuotaAppliesToPutGrants: grants by presigned PUT are admitted like
// POST ones: the rate limit and the quotas count them.
func TestQuotaAppliesToPutGrants(t *testing.T) {
	e := newEnv(t, s3srv.URL)
	ctx := context.Background()
	e.profile.Method = MethodPut
	e.profile.Limits = Limits{QuotaLimits: store.QuotaLimits{MaxPending: 1}, Rate: Rate{N: 2, Per: time.Minute}}
	if _, err := e.svc.Create(ctx, e.profile, "alice", CreateRequest{ContentType: "image/png", Size: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(ctx, e.profile, "alice", CreateRequest{ContentType: "image/png", Size: 10}); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("second PUT grant at max_pending 1: %v", err)
	}
	if _, err := e.svc.Create(ctx, e.profile, "alice", CreateRequest{ContentType: "image/png", Size: 10}); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("third PUT grant at rate 2/1m: %v", err)
	}
}
