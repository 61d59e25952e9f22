package app

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

// sweeper keeps bucket, store and backend consistent without the client:
// it settles pending intents whose policy expired, re-checks finalized
// ones after expiry, and prunes settled ones after the retention. One runs
// per store (per process), across reloads, with the newest config's
// profiles and settings. Its clock is the newest config's service's Now.
type sweeper struct {
	c       *core
	log     atomic.Pointer[zap.Logger]
	ctx     context.Context
	cancel  context.CancelFunc
	wake    chan struct{}
	done    chan struct{}
	workers int
}

// sweepPage is how many intents one listing returns.
const sweepPage = 256

// callTimeout bounds the S3 calls made for one intent, so one request
// that never answers cannot stall the sweep (and hold the intent's lock).
const callTimeout = time.Minute

// bounded runs fn with a context that ends after callTimeout.
func (s *sweeper) bounded(fn func(ctx context.Context)) {
	ctx, cancel := context.WithTimeout(s.ctx, callTimeout)
	defer cancel()
	fn(ctx)
}

func newSweeper(c *core, logger *zap.Logger) *sweeper {
	s := &sweeper{c: c, wake: make(chan struct{}, 1), done: make(chan struct{}), workers: 8}
	s.setLogger(logger)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.loop()
	return s
}

// setLogger makes the sweeper log to l from now on (a reload's logger).
func (s *sweeper) setLogger(l *zap.Logger) {
	if l == nil {
		l = zap.NewNop()
	}
	s.log.Store(l)
}

func (s *sweeper) logger() *zap.Logger {
	if l := s.log.Load(); l != nil {
		return l
	}
	return zap.NewNop()
}

func (s *sweeper) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sweeper) stop() {
	s.cancel()
	<-s.done
}

func (s *sweeper) loop() {
	defer close(s.done)
	for {
		interval := DefaultSweepInterval
		if a := s.c.current(); a != nil {
			interval = time.Duration(a.SweepInterval)
		}
		t := time.NewTimer(interval)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-s.wake:
			t.Stop()
		case <-t.C:
		}
		s.sweep()
	}
}

// SweepStats counts what one sweep did. Settled counts intents this sweep
// finalized; Waiting those listed but not yet due (their own grace, longer
// for large uploads, has not passed), which were left alone.
type SweepStats struct {
	Settled, Waiting, Rechecked, Pruned, Deferred int
}

// sweep runs one pass with the newest config.
func (s *sweeper) sweep() SweepStats {
	var st SweepStats
	a := s.c.current()
	if a == nil {
		return st
	}
	svc, err := a.Service()
	if err != nil {
		return st
	}
	now := svc.Now()
	grace := time.Duration(a.ExpiryGrace)
	var mu sync.Mutex
	count := func(n *int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && upload.Retryable(err) {
			st.Deferred++
			return
		}
		*n++
	}
	s.each(store.ByExpiry, now.Add(-grace), func(in *store.Intent) {
		if p, ok := a.Profile(in.Profile); ok {
			s.bounded(func(ctx context.Context) {
				out, err := svc.Sweep(ctx, p, in.ID)
				if err == nil && out != nil && out.Status == store.StatusPending {
					count(&st.Waiting, nil)
					return
				}
				count(&st.Settled, err)
			})
		}
	})
	s.each(store.ByRecheck, now.Add(-grace), func(in *store.Intent) {
		if p, ok := a.Profile(in.Profile); ok {
			s.bounded(func(ctx context.Context) {
				_, err := svc.Recheck(ctx, p, in.ID, false)
				count(&st.Rechecked, err)
			})
		}
	})
	s.each(store.ByFinished, now.Add(-time.Duration(a.Retention)), func(in *store.Intent) {
		err := s.c.db.Prune(s.ctx, in.ID)
		switch {
		case err == nil:
			metrics.Pruned.Inc()
			count(&st.Pruned, nil)
		case errors.Is(err, store.ErrStateChanged):
			// An event is still being delivered: next time.
		default:
			s.logger().Error("pruning intent failed", zap.String("intent_id", in.ID), zap.Error(err))
		}
	})
	if st != (SweepStats{}) {
		s.logger().Info("sweep done", zap.Int("settled", st.Settled), zap.Int("waiting", st.Waiting), zap.Int("rechecked", st.Rechecked),
			zap.Int("pruned", st.Pruned), zap.Int("deferred", st.Deferred))
	}
	return st
}

// each calls fn for every intent of an index due before t, a page at a
// time, with a few workers (each call is one or two S3 requests).
func (s *sweeper) each(idx store.Index, t time.Time, fn func(*store.Intent)) {
	var cur store.Cursor
	for s.ctx.Err() == nil {
		page, next, err := s.c.db.List(s.ctx, idx, t, cur, sweepPage)
		if err != nil {
			if !errors.Is(err, store.ErrClosed) {
				s.logger().Error("listing intents failed", zap.String("index", string(idx)), zap.Error(err))
			}
			return
		}
		jobs := make(chan *store.Intent)
		var wg sync.WaitGroup
		for w := 0; w < s.workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for in := range jobs {
					fn(in)
				}
			}()
		}
		for _, in := range page {
			if in.Damaged != "" {
				continue // the store reported it; the others go on
			}
			jobs <- in
		}
		close(jobs)
		wg.Wait()
		if next == nil {
			return
		}
		cur = next
	}
}
