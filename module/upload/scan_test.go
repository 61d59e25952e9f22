package upload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/scan"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// Unit tests of the scan's place in the flow (scan.go), against the real
// versitygw and Badger, with a fake scanner. The clamd protocol is tested
// in module/scan; a real clamd in module/integration/scan_test.go.

// fakeScanner reads the whole stream, records it, and answers by fn.
type fakeScanner struct {
	fn    func(data []byte, call int) (scan.Result, error)
	calls int
	got   [][]byte
}

func (f *fakeScanner) Scan(ctx context.Context, r io.Reader) (scan.Result, error) {
	f.calls++
	data, err := io.ReadAll(r)
	if err != nil {
		return scan.Result{}, fmt.Errorf("%w: %w", scan.ErrSource, err)
	}
	f.got = append(f.got, data)
	return f.fn(data, f.calls)
}

func found(data []byte, _ int) (scan.Result, error) {
	if bytes.Contains(data, []byte("EVIL")) {
		return scan.Result{Found: "Test.Evil"}, nil
	}
	return scan.Result{}, nil
}

func down(data []byte, _ int) (scan.Result, error) {
	return scan.Result{}, fmt.Errorf("%w: connection refused", scan.ErrUnavailable)
}

func newScanEnv(t *testing.T, fn func([]byte, int) (scan.Result, error)) (*env, *fakeScanner) {
	e := newPromotingEnv(t)
	f := &fakeScanner{fn: fn}
	e.profile.Scan = &ScanConfig{Scanner: f, Hit: ScanHitQuarantine, QuarantinePrefix: "quarantine/"}
	return e, f
}

// TestScanStreamsTheVerifiedBytes: the scanner gets exactly the uploaded
// bytes, before promotion; clean is recorded.
func TestScanStreamsTheVerifiedBytes(t *testing.T) {
	e, f := newScanEnv(t, found)
	ctx := context.Background()
	data := pngOf(string(bytes.Repeat([]byte("x"), 300<<10)))
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", data)
	in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	if err != nil || in.Status != store.StatusCompleted || in.Scan != ScanClean || in.Scanning {
		t.Fatalf("complete: %+v %v", in, err)
	}
	if f.calls != 1 || !bytes.Equal(f.got[0], data) {
		t.Fatalf("scanner called %d times, last with %d bytes; want once with %d", f.calls, len(f.got[len(f.got)-1]), len(data))
	}
	if !bytes.Equal(getObject(t, in.Key), data) {
		t.Fatal("final object is not the uploaded one")
	}
}

// TestScanFailClosedHoldsThenSweepFinishes: with the scanner down the
// intent stays pending and Scanning (complete and the sweeper answer
// scan_pending, which is retryable); nothing is promoted; once the
// scanner is back the sweeper completes it.
func TestScanFailClosedHoldsThenSweepFinishes(t *testing.T) {
	e, f := newScanEnv(t, down)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	_, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	var ue *Error
	if !errors.Is(err, ErrScanPending) || !errors.As(err, &ue) || ue.RetryAfter <= 0 || !Retryable(err) {
		t.Fatalf("complete with scanner down: %v", err)
	}
	e.pastGrace()
	if _, err := e.svc.Sweep(ctx, e.profile, g.Intent.ID); !errors.Is(err, ErrScanPending) {
		t.Fatalf("sweep with scanner down: %v", err)
	}
	mid, _ := e.db.Get(ctx, g.Intent.ID)
	if mid.Status != store.StatusPending || !mid.Scanning || mid.ETag == "" || len(events(t, e.db)) != 0 || !absent(t, e.profile.Objects, mid.Key) {
		t.Fatalf("held intent: %+v", mid)
	}
	f.fn = found
	in, err := e.svc.Sweep(ctx, e.profile, g.Intent.ID)
	if err != nil || in.Status != store.StatusCompleted || in.Scan != ScanClean || in.Scanning {
		t.Fatalf("sweep with scanner back: %+v %v", in, err)
	}
}

// TestScanFailOpenCompletesSkipped: scan_fail open completes unscanned
// and says so.
func TestScanFailOpenCompletesSkipped(t *testing.T) {
	e, _ := newScanEnv(t, down)
	e.profile.Scan.FailOpen = true
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	in, err := e.svc.Complete(context.Background(), e.profile, "alice", g.Intent.ID, nil)
	if err != nil || in.Status != store.StatusCompleted || in.Scan != ScanSkipped {
		t.Fatalf("complete: %+v %v", in, err)
	}
}

// TestScanRefusedRejects: a stream the scanner refuses (over its
// StreamMaxLength) would be refused forever: fail-closed rejects it.
func TestScanRefusedRejects(t *testing.T) {
	e, _ := newScanEnv(t, func([]byte, int) (scan.Result, error) {
		return scan.Result{}, fmt.Errorf("%w: INSTREAM size limit exceeded.", scan.ErrRefused)
	})
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	in, err := e.svc.Complete(context.Background(), e.profile, "alice", g.Intent.ID, nil)
	if !errors.Is(err, ErrRejected) || in.Reason != string(ReasonScanRefused) || !absent(t, e.profile.Objects, in.StagingKey) {
		t.Fatalf("complete: %+v %v", in, err)
	}
	if evs := events(t, e.db); len(evs) != 1 || evs[0].Type != store.EventRejected {
		t.Fatalf("events: %+v", evs)
	}
}

// failCopy fails the quarantine copy once, as a crash would.
type failCopy struct {
	Objects
	fail bool
}

func (c *failCopy) Open(ctx context.Context, key, etag string) (io.ReadCloser, error) {
	return c.Objects.(objectOpener).Open(ctx, key, etag)
}

func (c *failCopy) Copy(ctx context.Context, src, dst, etag string, size int64, sha256 bool) (string, error) {
	if c.fail {
		c.fail = false
		return "", errors.New("injected failure of the quarantine copy")
	}
	return c.Objects.Copy(ctx, src, dst, etag, size, sha256)
}

// TestQuarantineResumesAfterInterruption: the hit is recorded before the
// copy; a failed copy leaves a decided rejection that the next call (or
// the sweeper) carries out, with upload.quarantined, without scanning
// again.
func TestQuarantineResumesAfterInterruption(t *testing.T) {
	e, f := newScanEnv(t, found)
	ctx := context.Background()
	data := pngOf("EVIL bytes")
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", data)
	real := e.profile.Objects
	e.profile.Objects = &failCopy{Objects: real, fail: true}
	if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrStorage) {
		t.Fatalf("interrupted complete: %v", err)
	}
	mid, _ := e.db.Get(ctx, g.Intent.ID)
	if mid.Status != store.StatusPending || !mid.Rejecting || mid.Reason != string(ReasonMalwareFound) ||
		mid.QuarantineKey != "quarantine/"+mid.Key || mid.Threat != "Test.Evil" || len(events(t, e.db)) != 0 {
		t.Fatalf("after the interruption: %+v", mid)
	}
	in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	if !errors.Is(err, ErrRejected) || in.Status != store.StatusRejected || in.Scan != ScanFound {
		t.Fatalf("resumed complete: %+v %v", in, err)
	}
	if f.calls != 1 {
		t.Fatalf("scanned %d times; the decided hit must not be scanned again", f.calls)
	}
	if !bytes.Equal(getObject(t, "quarantine/"+in.Key), data) || !absent(t, real, in.StagingKey) || !absent(t, real, in.Key) {
		t.Fatal("not moved to quarantine")
	}
	if evs := events(t, e.db); len(evs) != 1 || evs[0].Type != store.EventQuarantined || evs[0].Intent.QuarantineKey == "" {
		t.Fatalf("events: %+v", evs)
	}
}

// TestScanOfReplacedObjectDecidesNothing: the object is replaced (the
// grant replayed) between verification and the scan: the GET's If-Match
// fails, nothing is decided, and the next call verifies and scans the
// new bytes.
func TestScanOfReplacedObjectDecidesNothing(t *testing.T) {
	e, _ := newScanEnv(t, found)
	ctx := context.Background()
	g := e.grant(t, "image/png", 0)
	post(t, g, "image/png", pngBytes)
	replaced := pngOf("EVIL replacement")
	inner := &fakeScanner{fn: found}
	first := true
	e.profile.Scan.Scanner = scannerFunc(func(ctx context.Context, r io.Reader) (scan.Result, error) {
		if first {
			first = false
			post(t, g, "image/png", replaced)
		}
		return inner.Scan(ctx, r)
	})
	if _, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("complete while replaced: %v", err)
	}
	in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	if !errors.Is(err, ErrRejected) || in.Reason != string(ReasonMalwareFound) {
		t.Fatalf("second complete: %+v %v", in, err)
	}
	if len(inner.got) != 1 || !bytes.Equal(inner.got[0], replaced) {
		t.Fatalf("scanner saw %d streams; want only the replacement", len(inner.got))
	}
}

type scannerFunc func(ctx context.Context, r io.Reader) (scan.Result, error)

func (f scannerFunc) Scan(ctx context.Context, r io.Reader) (scan.Result, error) { return f(ctx, r) }
