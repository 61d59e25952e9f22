package upload

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// SweepItem is one listed pending intent for SweepPage, with its profile,
// and (set by SweepPage) what Sweep would have returned for it.
type SweepItem struct {
	In      *store.Intent // as the listing read it
	Profile *Profile
	Out     *store.Intent
	Err     error
}

// absenter is a bucket that can tell an absent object with one lean call
// (*bucket.Bucket).
type absenter interface {
	Absent(ctx context.Context, key string) (bool, error)
}

// errStale refuses the batched expiry of an intent that changed, in what
// the decision rests on, since the listing read it.
var errStale = errors.New("intent changed since it was listed")

// detailExpired is the detail of an intent that expired without an object.
const detailExpired = "no object arrived before the permission expired"

// SweepPage settles a page of listed pending intents, each exactly as
// Sweep would (same outcome, events, logs and metrics), with workers
// concurrent S3 calls, each bounded by timeout (with the intent's lock
// wait). The common case, an intent whose object never came, is made
// cheap: its listed copy is used instead of a re-read, the object's
// absence is asked with one lean call (bucket.Absent), and the expiries of
// the page are written together (Store.UpdateBatch: one synced write per
// group instead of one per intent), each intent's lock held until its
// expiry is durable. Every other case (an object that arrived, a
// multipart, promotion or rejection in progress, on_expiry delete, a
// moved bucket, an intent not due yet or changed since the listing) goes
// through Sweep itself.
func (s *Service) SweepPage(ctx context.Context, items []SweepItem, workers int, timeout time.Duration) {
	s.LookPage(ctx, items, workers, timeout).Finish()
}

// PageLooked is a page whose objects SweepPage has looked at: the intents
// found absent are locked, waiting for Finish to write their expiries.
type PageLooked struct {
	s       *Service
	ctx     context.Context
	items   []SweepItem
	timeout time.Duration
	batched []heldIntent
	slow    []int
}

// heldIntent is an item found absent: when the look started, and its lock.
type heldIntent struct {
	i      int
	at     time.Time
	unlock func()
}

// LookPage is SweepPage's first half: the S3 looks, with workers
// concurrent calls. Finish must follow (it releases the locks taken); the
// sweeper runs the next page's LookPage while this one's Finish writes.
func (s *Service) LookPage(ctx context.Context, items []SweepItem, workers int, timeout time.Duration) *PageLooked {
	pl := &PageLooked{s: s, ctx: ctx, items: items, timeout: timeout}
	var (
		mu   sync.Mutex
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for i := range items {
		items[i].Out, items[i].Err = nil, ErrUnavailable // until looked at
	}
	for w := 0; w < max(1, workers); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(items) || ctx.Err() != nil {
					return
				}
				it := &items[i]
				it.Err = nil
				if !s.expirable(it.In, it.Profile) {
					mu.Lock()
					pl.slow = append(pl.slow, i)
					mu.Unlock()
					continue
				}
				at, unlock, absent, err := s.lookAbsent(ctx, it, timeout)
				mu.Lock()
				switch {
				case absent:
					pl.batched = append(pl.batched, heldIntent{i, at, unlock})
				case err != nil:
					it.Err = err
				default: // there, or a look that must be made again in full
					pl.slow = append(pl.slow, i)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return pl
}

// Finish is SweepPage's second half: the expiries of the intents found
// absent written together, their locks released, then every other item
// through Sweep. The items' Out and Err are set when it returns.
func (pl *PageLooked) Finish() {
	s, ctx, items := pl.s, pl.ctx, pl.items
	slow := pl.slow
	if len(pl.batched) > 0 {
		now := s.Now().UTC()
		ups := make([]store.BatchUpdate, len(pl.batched))
		for k, h := range pl.batched {
			listed, at := items[h.i].In, h.at
			ups[k] = store.BatchUpdate{ID: listed.ID, From: store.StatusPending, T: func(x *store.Intent) (store.Event, error) {
				if x.Rejecting || x.Promoting || x.Scanning || x.UploadID != "" || x.StagingKey != "" || x.Bucket != listed.Bucket ||
					x.Key != listed.Key || !x.ExpiresAt.Equal(listed.ExpiresAt) || x.MaxSize != listed.MaxSize {
					return store.Event{}, errStale
				}
				// As transition does for an expiry (no object, no abort).
				x.Status = store.StatusExpired
				x.UpdatedAt = now
				x.Reason, x.Detail, x.Rejecting, x.Promoting, x.Scanning = string(ReasonExpired), detailExpired, false, false, false
				x.Settled = !at.Before(s.settleAfter(x))
				return store.Event{ID: "evt_" + s.NewID(), Type: store.EventExpired, CreatedAt: now}, nil
			}}
		}
		// The batch is written even if ctx ended meanwhile: the locks are
		// held and the looks were made.
		_ = s.Store.UpdateBatch(context.WithoutCancel(ctx), ups)
		for k, h := range pl.batched {
			it, u := &items[h.i], &ups[k]
			switch {
			case u.Err == nil:
				s.expired(u.Out)
				it.Out, it.Err = u.Out, outcomeErr(u.Out, store.StatusCompleted)
			case errors.Is(u.Err, errStale), errors.Is(u.Err, store.ErrStateChanged), errors.Is(u.Err, store.ErrConflict):
				slow = append(slow, h.i) // decided in full below
			default:
				s.Logger.Error("writing intent failed; nothing decided", zap.String("intent_id", it.In.ID), zap.Error(u.Err))
				it.Err = ErrUnavailable
			}
			h.unlock()
		}
	}

	for _, i := range slow {
		it := &items[i]
		if ctx.Err() != nil {
			it.Out, it.Err = nil, ErrUnavailable
			continue
		}
		func() {
			ictx, cancel := context.WithTimeout(ctx, pl.timeout)
			defer cancel()
			it.Out, it.Err = s.Sweep(ictx, it.Profile, it.In.ID)
		}()
	}
}

// expirable reports whether the listed intent in may be expired by the
// batched path: pending, due, nothing in progress on it, no multipart to
// abort, expiry by finalizing, its bucket still the profile's, and a
// bucket that can make the lean call.
func (s *Service) expirable(in *store.Intent, p *Profile) bool {
	if p.Objects == nil || in.Status != store.StatusPending || in.Rejecting || in.Promoting || in.Scanning || in.UploadID != "" || in.StagingKey != "" ||
		p.OnExpiry == OnExpiryDelete || in.Bucket != p.Objects.Name() || s.Now().Before(s.settleAfter(in)) {
		return false
	}
	_, ok := p.Objects.(absenter)
	return ok
}

// lookAbsent takes the intent's lock and asks whether its object is
// absent. If it is, the lock is kept (unlock releases it) and at is when
// the look started; otherwise the lock is released. An error is one Sweep
// would have returned (busy, or S3 failed: logged and counted as Sweep
// does).
func (s *Service) lookAbsent(ctx context.Context, it *SweepItem, timeout time.Duration) (at time.Time, unlock func(), absent bool, err error) {
	ictx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	in, p := it.In, it.Profile
	if unlock, err = s.lock(ictx, in.ID); err != nil {
		return at, nil, false, err
	}
	at = s.Now()
	absent, err = timed(ictx, s3Timeout(p), func(ctx context.Context) (bool, error) {
		return p.Objects.(absenter).Absent(ctx, UploadKey(in))
	})
	switch {
	case err != nil:
		unlock()
		metrics.S3Errors.WithLabelValues(in.Profile, "verify").Inc()
		return at, nil, false, logStorageErr(s.Logger.Warn, "verifying object failed; nothing decided", err,
			zap.String("intent_id", in.ID), zap.String("profile", in.Profile), zap.String("key", in.Key))
	case !absent || at.Before(s.settleAfter(in)):
		unlock()
		return at, nil, false, nil
	}
	return at, unlock, true, nil
}

// s3Timeout is the bound of one S3 call of the profile (see objects).
func s3Timeout(p *Profile) time.Duration {
	if p.S3Timeout > 0 {
		return p.S3Timeout
	}
	return DefaultS3Timeout
}

// expired logs, counts and announces an expiry SweepPage wrote, as
// transition does.
func (s *Service) expired(out *store.Intent) {
	if ce := s.Logger.Check(zapcore.InfoLevel, "upload "+string(out.Status)); ce != nil {
		ce.Write(zap.String("intent_id", out.ID), zap.String("profile", out.Profile), zap.String("key", out.Key),
			zap.String("status", string(out.Status)), zap.String("event", store.EventExpired), zap.String("reason", out.Reason))
	}
	metrics.IntentsFinalized.WithLabelValues(out.Profile, string(out.Status)).Inc()
	if s.OnEvent != nil {
		s.OnEvent(out.EventID)
	}
}
