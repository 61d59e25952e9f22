package upload

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// Promotion closes the overwrite window of a grant. A presigned POST (or
// PUT, or part URL) can be replayed until it expires, and S3 checks expiry
// when a request starts, so a slow upload begun just before expiry lands
// later still. With promotion, a grant only ever names a staging key
// (StagingPrefix + the final key); once the staging object is verified,
// the sidecar copies it server-side to the final key, on condition that
// the staging object still has the verified ETag
// (x-amz-copy-source-if-match), and then deletes the staging object. No
// grant ever names a final key, so whatever a client replays lands under
// the staging prefix, where the sweeper deletes it.
//
// As everywhere here: decide, record, then act. The verified ETag and
// Promoting are recorded first; then the copy; then the transition to
// completed (with the final object's ETag); then the staging object is
// deleted. A crash at any point is finished by the next complete or by
// the sweeper: a pending Promoting intent is copied again (the same bytes,
// by the same condition), a completed one's staging leftover is deleted by
// the re-check after expiry.

// UploadKey is the key an intent's grant names: its staging key under
// promotion, else its key.
func UploadKey(in *store.Intent) string {
	if in.StagingKey != "" {
		return in.StagingKey
	}
	return in.Key
}

// stagingKey is the key a grant names for an object whose final key is
// key: empty without promotion. A final key under the staging prefix
// (a template rendering there) is refused: a grant could then name it.
func (p *Profile) stagingKey(key string) (string, error) {
	if p.StagingPrefix == "" {
		return "", nil
	}
	if strings.HasPrefix(key, p.StagingPrefix) {
		return "", errorf(ErrInvalidRequest, "this upload's key would fall under the staging prefix; the profile's key template must not render there")
	}
	return p.StagingPrefix + key, nil
}

// decidePromotion records that the verified staging object is to be
// copied to the final key, and carries the promotion out. The record is
// written while the copy runs, and the promotion goes on only once both
// are done: the copy's condition (the verified ETag) already pins what
// the record says, and a synced write no longer waits in front of the
// copy. What a crash between the two can leave is argued in
// docs/performance.md (### Complete): at worst a final object that holds
// verified bytes of this intent while the intent, still pending, is
// decided afresh by the next call.
func (s *Service) decidePromotion(ctx context.Context, p *Profile, in *store.Intent, v verdict, wanted store.Status) (*store.Intent, error) {
	type note struct {
		in  *store.Intent
		err error
	}
	noting := make(chan note, 1)
	go func() {
		noted, err := s.Store.Annotate(ctx, in.ID, in.Status, func(x *store.Intent) {
			x.Promoting = true
			x.ObjectSize, x.ObjectType, x.ETag = v.obj.Size, v.sniffed, v.obj.ETag
			x.Width, x.Height = v.width, v.height
		})
		noting <- note{noted, err}
	}()
	etag, cerr := p.objects().Copy(ctx, in.StagingKey, in.Key, v.obj.ETag, v.obj.Size, in.ChecksumSHA256 != "")
	n := <-noting
	if n.err != nil {
		return s.afterStoreErr(ctx, in, n.err, wanted)
	}
	return s.promoted(ctx, p, n.in, v, wanted, etag, cerr)
}

// carryOutPromotion copies the verified staging object (in.ETag) to the
// final key, records the completion, then deletes the staging object.
func (s *Service) carryOutPromotion(ctx context.Context, p *Profile, in *store.Intent, v verdict, wanted store.Status) (*store.Intent, error) {
	if v.at.IsZero() { // resumed: the copy is the look that decides
		v.at = s.Now()
	}
	etag, err := p.objects().Copy(ctx, in.StagingKey, in.Key, in.ETag, in.ObjectSize, in.ChecksumSHA256 != "")
	return s.promoted(ctx, p, in, v, wanted, etag, err)
}

// promoted goes on from the copy of a recorded promotion (etag and err
// are the copy's): completion, or what the copy's failure calls for.
func (s *Service) promoted(ctx context.Context, p *Profile, in *store.Intent, v verdict, wanted store.Status, etag string, err error) (*store.Intent, error) {
	if errors.Is(err, bucket.ErrChanged) || errors.Is(err, bucket.ErrNotFound) {
		// The staging object is no longer the verified one. If the copy
		// was made before (a crash after it), the final object is ours.
		etag, err = s.copiedBefore(ctx, p, in)
		if err != nil {
			return nil, err
		}
		if etag == "" {
			return s.undoPromotion(ctx, in, wanted)
		}
	} else if err != nil {
		s.Logger.Warn("promoting object failed; will finish on the next call",
			zap.String("intent_id", in.ID), zap.String("staging_key", in.StagingKey), zap.String("key", in.Key), zap.Error(err))
		metrics.S3Errors.WithLabelValues(in.Profile, "copy").Inc()
		return nil, storageErr(err)
	}
	if in.ChecksumSHA256 != "" {
		// The store computed the copy's SHA-256: compare before completing.
		final, err := storedChecksum(ctx, p.objects(), in.Profile, in.Key, etag)
		if err != nil {
			return nil, storageErr(err)
		}
		if reason, detail := checksumVerdict(in, final); reason != "" {
			return s.decideRejection(ctx, p, in, verdict{reason: reason, detail: detail, at: v.at,
				obj: bucket.Object{Size: in.ObjectSize, ETag: in.ETag}, sniffed: in.ObjectType, width: in.Width, height: in.Height}, wanted)
		}
	}
	v.obj = bucket.Object{Size: in.ObjectSize, ETag: etag}
	v.sniffed = in.ObjectType
	// Recorded with the decision.
	v.width, v.height = in.Width, in.Height
	v.unsettled = true // until the staging object is gone
	out, err := s.transition(ctx, in, in.Status, store.StatusCompleted, v, wanted)
	if out == nil || out.Status != store.StatusCompleted || out.StagingKey == "" {
		return out, err
	}
	if answerFirst(ctx) && s.cleanups.start() {
		// The completion is durable and the intent unsettled: the client
		// need not wait for the staging object's deletion (see
		// dropStaging).
		bg, objs := context.WithoutCancel(ctx), p.objects()
		go func() {
			defer s.cleanups.done()
			s.dropStaging(bg, objs, out, v.at)
		}()
		return out, err
	}
	return s.dropStaging(ctx, p.objects(), out, v.at), err
}

// dropStaging deletes the staging object of a promoted intent, and marks
// the intent settled if nothing can reach the staging key any more (the
// deciding look at was after the grant's expiry and grace); it returns
// the intent as it is then. A deletion that fails or never runs (the
// process stops) leaves the intent unsettled, and the re-check after
// expiry deletes whatever is at the staging key (recheckPromoted).
func (s *Service) dropStaging(ctx context.Context, objs Objects, out *store.Intent, at time.Time) *store.Intent {
	if derr := objs.Delete(ctx, out.StagingKey); derr != nil {
		s.Logger.Warn("deleting promoted staging object failed; the re-check will",
			zap.String("intent_id", out.ID), zap.String("staging_key", out.StagingKey), zap.Error(derr))
		metrics.S3Errors.WithLabelValues(out.Profile, "delete").Inc()
		return out
	}
	if !at.Before(s.settleAfter(out)) {
		// Nothing can reach the staging key any more: nothing to re-check.
		if settled, serr := s.markSettled(ctx, out, true); serr == nil {
			out = settled
		}
	}
	return out
}

// copiedBefore returns the ETag of the final object if this intent's
// promotion already copied it there, or "" if there is none.
func (s *Service) copiedBefore(ctx context.Context, p *Profile, in *store.Intent) (string, error) {
	obj, err := p.objects().Stat(ctx, in.Key)
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		return "", nil
	case err != nil:
		metrics.S3Errors.WithLabelValues(in.Profile, "head").Inc()
		return "", storageErr(err)
	case obj.Metadata[MetaIntentID] == in.ID && obj.Size == in.ObjectSize:
		// Only the promotion writes a final key, and only with the
		// verified bytes (the copy's condition).
		return obj.ETag, nil
	}
	return "", nil
}

// dropLostCopy deletes the final object of a pending intent under
// promotion that is about to end other than completed, if that object is
// this intent's copy (only a promotion writes a final key, and the copy
// keeps the staging object's intent id): a promotion's record is written
// alongside its copy (decidePromotion), so a crash or a failed store
// write can leave a copy whose decision was never recorded.
func (s *Service) dropLostCopy(ctx context.Context, p *Profile, in *store.Intent) error {
	if in.StagingKey == "" || in.Promoting {
		return nil
	}
	obj, err := p.objects().Stat(ctx, in.Key)
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		return nil
	case err != nil:
		metrics.S3Errors.WithLabelValues(in.Profile, "head").Inc()
		return storageErr(err)
	case obj.Metadata[MetaIntentID] != in.ID:
		return nil
	}
	if err := p.objects().Delete(ctx, in.Key); err != nil {
		metrics.S3Errors.WithLabelValues(in.Profile, "delete").Inc()
		return storageErr(err)
	}
	s.Logger.Warn("copy of an unrecorded promotion deleted from the final key",
		zap.String("intent_id", in.ID), zap.String("key", in.Key))
	return nil
}

// undoPromotion withdraws a promotion whose staging object changed before
// it was copied (replaced or removed through the still-valid grant): the
// verified bytes are gone, so the next call verifies what is there now.
func (s *Service) undoPromotion(ctx context.Context, in *store.Intent, wanted store.Status) (*store.Intent, error) {
	s.Logger.Warn("staging object changed before its promotion; verifying again on the next call",
		zap.String("intent_id", in.ID), zap.String("staging_key", in.StagingKey))
	_, err := s.Store.Annotate(ctx, in.ID, in.Status, func(x *store.Intent) {
		x.Promoting = false
		x.ObjectSize, x.ObjectType, x.ETag = 0, "", ""
		x.Width, x.Height = 0, 0
	})
	if err != nil {
		return s.afterStoreErr(ctx, in, err, wanted)
	}
	return nil, errorf(ErrBusy, "the uploaded object changed while it was being promoted; try again")
}

// recheckPromoted is the re-check of a finalized intent under promotion:
// its staging key can still receive uploads until the grant expires, so
// whatever is there is deleted (the final key is never granted). A
// completed intent's final object is looked at too, for the record.
func (s *Service) recheckPromoted(ctx context.Context, p *Profile, in *store.Intent, final bool) (*store.Intent, error) {
	result := "unchanged"
	switch _, err := p.objects().Stat(ctx, in.StagingKey); {
	case errors.Is(err, bucket.ErrNotFound):
	case err != nil:
		metrics.S3Errors.WithLabelValues(in.Profile, "head").Inc()
		return nil, storageErr(err)
	default:
		if err := p.objects().Delete(ctx, in.StagingKey); err != nil {
			metrics.S3Errors.WithLabelValues(in.Profile, "delete").Inc()
			return nil, storageErr(err)
		}
		s.Logger.Warn("staging object of a finalized upload deleted",
			zap.String("intent_id", in.ID), zap.String("profile", in.Profile), zap.String("staging_key", in.StagingKey), zap.String("status", string(in.Status)))
		result = "orphan_deleted"
	}
	if in.Status == store.StatusCompleted {
		switch obj, err := p.objects().Stat(ctx, in.Key); {
		case errors.Is(err, bucket.ErrNotFound):
			s.Logger.Warn("completed object is gone from the bucket", zap.String("intent_id", in.ID), zap.String("key", in.Key))
			result = "gone"
		case err != nil:
			metrics.S3Errors.WithLabelValues(in.Profile, "head").Inc()
			return nil, storageErr(err)
		case obj.ETag != in.ETag:
			// No grant names a final key: whoever changed it holds the
			// bucket's credentials. Reported, not judged.
			s.Logger.Warn("completed object was changed outside the upload flow",
				zap.String("intent_id", in.ID), zap.String("key", in.Key))
			result = "changed_outside"
		}
	}
	s.recheckResult(in, result)
	return s.markSettled(ctx, in, final)
}
