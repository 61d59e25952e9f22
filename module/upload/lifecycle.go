package upload

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// The sweeper's side of the flow: the client's last word is not trusted to
// come, so every intent is settled from what is in the bucket once its
// policy has expired.

// MinUploadRate is the slowest upload the grace after expiry allows for:
// S3 checks a policy (or a presigned part URL) when a request starts, so
// an upload of max_size bytes that starts just before expiry may take
// max_size / MinUploadRate to land.
const MinUploadRate = 1 << 20 // bytes per second

// settleAfter is when an intent's object can no longer change through
// this product: its expiry plus the larger of the configured grace and the
// time its largest upload could still take.
func (s *Service) settleAfter(in *store.Intent) time.Time {
	grace := max(s.Grace, time.Duration(in.MaxSize/MinUploadRate)*time.Second)
	return in.ExpiresAt.Add(grace)
}

// Retryable reports whether an error from Sweep, Recheck or Check means
// nothing was decided and the call should be made again later.
func Retryable(err error) bool {
	return errors.Is(err, ErrStorage) || errors.Is(err, ErrStorageTimeout) || errors.Is(err, ErrBusy) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrMoved) || errors.Is(err, ErrScanPending)
}

// Sweep settles a pending intent whose policy expired (and the grace for
// uploads in flight passed): an object that arrived is verified and
// completed or rejected, exactly as complete would, or deleted when the
// profile says on_expiry delete; no object means expired.
func (s *Service) Sweep(ctx context.Context, p *Profile, id string) (*store.Intent, error) {
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	in, err := s.reload(ctx, id)
	if err != nil || in.Status != store.StatusPending || s.Now().Before(s.settleAfter(in)) {
		return in, err
	}
	if err := s.sameBucket(p, in); err != nil {
		return nil, err
	}
	if p.OnExpiry == OnExpiryDelete && !in.Rejecting && !in.Promoting {
		at := s.Now()
		if err := s.abort(ctx, p, in); err != nil {
			return nil, err
		}
		if err := p.objects().Delete(ctx, UploadKey(in)); err != nil {
			metrics.S3Errors.WithLabelValues(in.Profile, "delete").Inc()
			return nil, storageErr(err)
		}
		if err := s.dropLostCopy(ctx, p, in); err != nil {
			return nil, err
		}
		return s.finishFor(ctx, in, store.StatusExpired, verdict{reason: ReasonNotCompleted,
			detail: "the client did not complete the upload before the permission expired; any object was deleted", at: at}, store.StatusExpired)
	}
	out, err := s.settle(ctx, p, in)
	if errors.Is(err, ErrObjectMissing) {
		return in, nil
	}
	return out, err
}

// Recheck looks once more at the object of a finalized intent after its
// policy expired: until then the same policy could overwrite it. A
// completed object with a new ETag is verified again (reported anew if
// valid, deleted and rejected if not); an object that reappeared for a
// failed, rejected or expired intent is an orphan and is deleted. Then the
// intent is settled. With force, the check runs before expiry too (and the
// intent stays unsettled).
func (s *Service) Recheck(ctx context.Context, p *Profile, id string, force bool) (*store.Intent, error) {
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	in, err := s.reload(ctx, id)
	if err != nil || !in.Status.Final() || in.Settled && !force {
		return in, err
	}
	final := !s.Now().Before(s.settleAfter(in))
	if !final && !force {
		return in, nil
	}
	if err := s.sameBucket(p, in); err != nil {
		return nil, err
	}
	if in.StagingKey != "" && !in.Rejecting {
		return s.recheckPromoted(ctx, p, in, final)
	}
	if in.Status == store.StatusCompleted {
		return s.recheckCompleted(ctx, p, in, final)
	}
	switch _, _, err := p.objects().Inspect(ctx, in.Key, 1); {
	case errors.Is(err, bucket.ErrNotFound):
		s.recheckResult(in, "unchanged")
	case err != nil:
		metrics.S3Errors.WithLabelValues(in.Profile, "head").Inc()
		return nil, storageErr(err)
	default:
		// Uploaded again with the still-valid policy after the intent was
		// finalized: nobody will ever reference it.
		if err := p.objects().Delete(ctx, in.Key); err != nil {
			metrics.S3Errors.WithLabelValues(in.Profile, "delete").Inc()
			return nil, storageErr(err)
		}
		s.Logger.Warn("orphan object of a finalized upload deleted",
			zap.String("intent_id", in.ID), zap.String("profile", in.Profile), zap.String("key", in.Key), zap.String("status", string(in.Status)))
		s.recheckResult(in, "orphan_deleted")
	}
	return s.markSettled(ctx, in, final)
}

func (s *Service) recheckCompleted(ctx context.Context, p *Profile, in *store.Intent, final bool) (*store.Intent, error) {
	if in.Rejecting {
		s.recheckResult(in, "rejected")
		return s.carryOutRejection(ctx, p, in, verdict{reason: Reason(in.Reason), detail: in.Detail}, store.StatusRejected)
	}
	obj, _, err := p.objects().Inspect(ctx, in.Key, 1)
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		s.Logger.Warn("completed object is gone from the bucket", zap.String("intent_id", in.ID), zap.String("key", in.Key))
		s.recheckResult(in, "gone")
		return s.markSettled(ctx, in, final)
	case err != nil:
		metrics.S3Errors.WithLabelValues(in.Profile, "head").Inc()
		return nil, storageErr(err)
	case obj.ETag == in.ETag:
		s.recheckResult(in, "unchanged")
		return s.markSettled(ctx, in, final)
	}
	v, err := s.verify(ctx, p, in)
	if errors.Is(err, bucket.ErrNotFound) {
		return s.markSettled(ctx, in, final)
	}
	if err != nil {
		metrics.S3Errors.WithLabelValues(in.Profile, "verify").Inc()
		return nil, storageErr(err)
	}
	if v.reason == "" {
		s.recheckResult(in, "replaced")
		v.reason, v.detail = ReasonOverwritten, "the object was replaced before the permission expired; this is the new version"
		return s.transition(ctx, in, store.StatusCompleted, store.StatusCompleted, v, store.StatusCompleted)
	}
	v.detail = "replaced before the permission expired: " + v.detail
	s.recheckResult(in, "rejected")
	return s.decideRejection(ctx, p, in, v, store.StatusRejected)
}

// markSettled records that nothing more will be checked, once the policy
// has expired.
func (s *Service) markSettled(ctx context.Context, in *store.Intent, final bool) (*store.Intent, error) {
	if !final {
		return in, nil
	}
	out, err := s.Store.Annotate(ctx, in.ID, in.Status, func(x *store.Intent) { x.Settled = true })
	if err != nil {
		return s.afterStoreErr(ctx, in, err, in.Status)
	}
	return out, nil
}

func (s *Service) recheckResult(in *store.Intent, result string) {
	metrics.Rechecks.WithLabelValues(in.Profile, result).Inc()
	s.Logger.Info("upload rechecked", zap.String("intent_id", in.ID), zap.String("profile", in.Profile),
		zap.String("key", in.Key), zap.String("status", string(in.Status)), zap.String("result", result))
}

// Check is the operator's forced look at one intent: a pending one is
// settled from the bucket now (an absent object before expiry decides
// nothing), a finalized one is re-checked.
func (s *Service) Check(ctx context.Context, p *Profile, id string) (*store.Intent, error) {
	in, err := s.reload(ctx, id)
	if err != nil {
		return nil, err
	}
	if in.Status.Final() {
		return s.Recheck(ctx, p, id, true)
	}
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if in, err = s.reload(ctx, id); err != nil || in.Status != store.StatusPending {
		return in, err
	}
	if err := s.sameBucket(p, in); err != nil {
		return nil, err
	}
	out, err := s.settle(ctx, p, in)
	if errors.Is(err, ErrObjectMissing) || errors.Is(err, ErrRejected) || errors.Is(err, ErrExpired) {
		if out == nil {
			out = in
		}
		return out, nil
	}
	return out, err
}

// reload reads an intent for the sweeper or an operator: no identity or
// profile check.
func (s *Service) reload(ctx context.Context, id string) (*store.Intent, error) {
	in, err := s.Store.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, ErrNotFound
	case err != nil:
		return nil, ErrUnavailable
	}
	return in, nil
}
