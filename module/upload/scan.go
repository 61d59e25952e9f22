package upload

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/scan"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// The opt-in malware scan. A verified object is streamed from the bucket
// (one GET, on condition that it still has the verified ETag) to the
// scanner before the upload may complete; this is the one place where an
// object's bytes flow through the sidecar.
//
// As everywhere here: decide, record, then act. Before the scan, the
// intent is marked Scanning (with the verified object's ETag); a clean
// result is recorded (Scan "clean") before promotion or completion; a hit
// is recorded as a rejection decided (Rejecting, reason malware_found,
// the quarantine key) before the object is copied to quarantine and
// deleted; the transition to rejected carries the upload.quarantined
// event. A scanner that cannot be reached decides nothing under
// fail-closed (the default): the intent stays pending and Scanning,
// complete answers scan_pending with Retry-After, and the next complete
// or the sweeper (once the policy expired) scans again. Under fail-open it
// completes with Scan "skipped".

// Scanner scans a stream; *scan.Client (clamd) is one.
type Scanner interface {
	Scan(ctx context.Context, r io.Reader) (scan.Result, error)
}

// What a profile does with an object the scan finds malware in.
const (
	ScanHitQuarantine = "quarantine"
	ScanHitDelete     = "delete"
)

// The results recorded on an intent (store.Intent.Scan).
const (
	ScanClean   = "clean"
	ScanFound   = "found"
	ScanSkipped = "skipped"
)

// Defaults of ScanConfig.
const (
	DefaultScanTimeout      = 2 * time.Minute
	DefaultQuarantinePrefix = "quarantine/"
	// scanRetryAfter is the Retry-After of scan_pending.
	scanRetryAfter = 30 * time.Second
)

// ScanConfig turns the malware scan on for a profile.
type ScanConfig struct {
	Scanner Scanner
	// Timeout bounds one scan: the GET, streaming the bytes and the
	// answer. Default: DefaultScanTimeout.
	Timeout time.Duration
	// FailOpen completes uploads unscanned (Scan "skipped") while the
	// scanner is unreachable; default false (fail-closed: they wait).
	FailOpen bool
	// Hit is ScanHitQuarantine (default) or ScanHitDelete.
	Hit string
	// QuarantinePrefix is where a hit is moved: the prefix + the final
	// key. Default: DefaultQuarantinePrefix.
	QuarantinePrefix string
}

func (c *ScanConfig) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultScanTimeout
}

// objectOpener is the streaming read a scan needs; *bucket.Bucket has it.
type objectOpener interface {
	Open(ctx context.Context, key, etag string) (io.ReadCloser, error)
}

// scanObject scans the verified object of a pending intent (v is what
// verify found). done is false when the upload may go on (clean, or
// skipped under fail-open); otherwise the intent or error returned is the
// call's answer.
func (s *Service) scanObject(ctx context.Context, p *Profile, in *store.Intent, v *verdict) (out *store.Intent, done bool, err error) {
	if in.Scan == ScanClean && in.ETag == v.obj.ETag {
		return nil, false, nil // these bytes were scanned before
	}
	if !in.Scanning || in.ETag != v.obj.ETag {
		noted, err := s.Store.Annotate(ctx, in.ID, in.Status, func(x *store.Intent) {
			x.Scanning, x.Scan, x.Threat = true, "", ""
			x.ObjectSize, x.ObjectType, x.ETag = v.obj.Size, v.sniffed, v.obj.ETag
			x.Width, x.Height = v.width, v.height
		})
		if err != nil {
			out, err := s.afterStoreErr(ctx, in, err, store.StatusCompleted)
			return out, true, err
		}
		in = noted
	}
	start := time.Now()
	res, err := s.runScan(ctx, p, UploadKey(in), v.obj.ETag)
	fields := []zap.Field{zap.String("intent_id", in.ID), zap.String("profile", in.Profile), zap.String("key", UploadKey(in)),
		zap.Int64("size", v.obj.Size), zap.Duration("took", time.Since(start))}
	switch {
	case err == nil && res.Clean():
		metrics.Scans.WithLabelValues(p.Name, "clean").Inc()
		s.Logger.Info("upload scanned clean", fields...)
		return s.noteScan(ctx, in, ScanClean)
	case err == nil:
		metrics.Scans.WithLabelValues(p.Name, "found").Inc()
		s.Logger.Warn("malware found in upload", append(fields, zap.String("threat", res.Found))...)
		out, err := s.decideQuarantine(ctx, p, in, *v, res.Found)
		return out, true, err
	case errors.Is(err, bucket.ErrChanged) || errors.Is(err, bucket.ErrNotFound):
		// Replaced or removed since it was verified: the next call
		// verifies what is there now.
		return nil, true, errorf(ErrBusy, "the uploaded object changed while it was being scanned; try again")
	case errors.Is(err, scan.ErrSource) || errors.Is(err, ErrStorage) || errors.Is(err, ErrStorageTimeout):
		metrics.S3Errors.WithLabelValues(in.Profile, "scan_read").Inc()
		return nil, true, logStorageErr(s.Logger.Warn, "reading object for the scan failed; nothing decided", err, fields...)
	case ctx.Err() != nil:
		return nil, true, ErrBusy // the caller gave up; nothing decided
	case errors.Is(err, scan.ErrRefused) && !p.Scan.FailOpen:
		// The scanner will refuse these bytes every time (over its
		// StreamMaxLength): waiting would hold the upload forever.
		metrics.Scans.WithLabelValues(p.Name, "refused").Inc()
		s.Logger.Warn("scanner refused the upload; rejecting (fail-closed)", append(fields, zap.Error(err))...)
		rv := *v
		rv.reason, rv.detail = ReasonScanRefused, "the malware scanner refused the object: "+err.Error()
		out, err := s.decideRejection(ctx, p, in, rv, store.StatusCompleted)
		return out, true, err
	case p.Scan.FailOpen:
		metrics.Scans.WithLabelValues(p.Name, "skipped").Inc()
		s.Logger.Warn("scanner unreachable; completing unscanned (scan_fail open)", append(fields, zap.Error(err))...)
		return s.noteScan(ctx, in, ScanSkipped)
	}
	metrics.Scans.WithLabelValues(p.Name, "pending").Inc()
	s.Logger.Warn("scanner unreachable; upload held until it returns (scan_fail closed)", append(fields, zap.Error(err))...)
	return nil, true, &Error{Code: ErrScanPending.Code, Message: ErrScanPending.Message, RetryAfter: scanRetryAfter}
}

// noteScan records a result that lets the upload go on.
func (s *Service) noteScan(ctx context.Context, in *store.Intent, result string) (*store.Intent, bool, error) {
	if _, err := s.Store.Annotate(ctx, in.ID, in.Status, func(x *store.Intent) {
		x.Scanning, x.Scan, x.Threat = false, result, ""
	}); err != nil {
		out, err := s.afterStoreErr(ctx, in, err, store.StatusCompleted)
		return out, true, err
	}
	return nil, false, nil
}

// runScan streams the object (only if it still has etag) to the scanner.
// The GET starts when the scanner asks for the first bytes, so a scanner
// that cannot be reached costs no request to the bucket.
func (s *Service) runScan(ctx context.Context, p *Profile, key, etag string) (scan.Result, error) {
	o, ok := p.Objects.(objectOpener)
	if !ok {
		return scan.Result{}, errors.New("this profile's bucket cannot stream objects")
	}
	ctx, cancel := context.WithTimeout(ctx, p.Scan.timeout())
	defer cancel()
	r := &lazyReader{open: func() (io.ReadCloser, error) { return o.Open(ctx, key, etag) }}
	defer r.Close()
	return p.Scan.Scanner.Scan(ctx, r)
}

// lazyReader opens its source on the first Read.
type lazyReader struct {
	open func() (io.ReadCloser, error)
	once sync.Once
	rc   io.ReadCloser
	err  error
}

func (l *lazyReader) Read(b []byte) (int, error) {
	l.once.Do(func() { l.rc, l.err = l.open() })
	if l.err != nil {
		return 0, l.err
	}
	return l.rc.Read(b)
}

func (l *lazyReader) Close() error {
	if l.rc != nil {
		return l.rc.Close()
	}
	return nil
}

// decideQuarantine records the hit and where the object goes, then
// carries it out (carryOutRejection calls quarantine).
func (s *Service) decideQuarantine(ctx context.Context, p *Profile, in *store.Intent, v verdict, threat string) (*store.Intent, error) {
	qkey := ""
	if p.Scan.Hit != ScanHitDelete {
		prefix := p.Scan.QuarantinePrefix
		if prefix == "" {
			prefix = DefaultQuarantinePrefix
		}
		qkey = prefix + in.Key
	}
	detail := "the malware scan found " + threat
	noted, err := s.Store.Annotate(ctx, in.ID, in.Status, func(x *store.Intent) {
		x.Reason, x.Detail, x.Rejecting = string(ReasonMalwareFound), detail, true
		x.Scanning, x.Scan, x.Threat, x.QuarantineKey = false, ScanFound, threat, qkey
		x.ObjectSize, x.ObjectType, x.ETag = v.obj.Size, v.sniffed, v.obj.ETag
		x.Width, x.Height = v.width, v.height
	})
	if err != nil {
		return s.afterStoreErr(ctx, in, err, store.StatusCompleted)
	}
	v.reason, v.detail = ReasonMalwareFound, detail
	return s.carryOutRejection(ctx, p, noted, v, store.StatusCompleted)
}

// quarantine is the first step of carrying out a rejection for malware:
// the object is copied server-side to its quarantine key (when one was
// decided), and the transition will carry upload.quarantined. Other
// rejections pass through untouched.
func (s *Service) quarantine(ctx context.Context, p *Profile, in *store.Intent, v *verdict) error {
	if Reason(in.Reason) != ReasonMalwareFound {
		return nil
	}
	v.event = store.EventQuarantined
	if in.QuarantineKey == "" {
		return nil
	}
	_, err := p.objects().Copy(ctx, UploadKey(in), in.QuarantineKey, in.ETag, in.ObjectSize, false)
	if errors.Is(err, bucket.ErrChanged) || errors.Is(err, bucket.ErrNotFound) {
		// Copied before a crash and deleted since, or replaced: the
		// scanned bytes are not there to copy; whatever is goes anyway.
		s.Logger.Warn("infected object changed or gone before its quarantine copy; deleting what is there",
			zap.String("intent_id", in.ID), zap.String("key", UploadKey(in)), zap.String("quarantine_key", in.QuarantineKey))
		return nil
	}
	if err != nil {
		s.Logger.Warn("copying infected object to quarantine failed; will finish on the next call",
			zap.String("intent_id", in.ID), zap.String("quarantine_key", in.QuarantineKey), zap.Error(err))
		metrics.S3Errors.WithLabelValues(in.Profile, "copy").Inc()
		return storageErr(err)
	}
	return nil
}
