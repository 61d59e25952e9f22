package app

import (
	"context"
	"errors"
	"slices"
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
//
// Instances sharing a store sweep one at a time: a pass runs only while
// this instance holds the store's "sweeper" lease (SweeperLease), taken or
// renewed at the start of each pass and between pages, for a few sweep
// intervals; if the holder dies, another instance takes over when the
// lease runs out. Each decision is also serialized per intent by the
// store (a row lock), so an overlap at a hand-over decides nothing twice.
type sweeper struct {
	c       *core
	owner   string
	log     atomic.Pointer[zap.Logger]
	ctx     context.Context
	cancel  context.CancelFunc
	wake    chan struct{}
	done    chan struct{}
	workers int

	// passMu makes passes (and the lease's fields) one at a time.
	passMu sync.Mutex
	// The lease: whether this instance held it at the last look (for the
	// log of changes), when it was last renewed, and for how long.
	holds   bool
	known   bool // holds was looked at once
	renewed time.Time
	ttl     time.Duration
	// unavailable is the store's ErrUnavailable met during a pass.
	unavailable atomic.Pointer[error]
	backoff     store.Backoff
}

// SweeperLease is the name of the lease the sweeping instance holds.
const SweeperLease = "sweeper"

// sweeperLeaseTTL is the sweeper lease's duration: a few sweep intervals,
// so that a pass that is late (a slow page) does not lose it, and at least
// 30s.
func sweeperLeaseTTL(interval time.Duration) time.Duration {
	return max(3*interval, 30*time.Second)
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
	s := &sweeper{c: c, owner: c.owner, wake: make(chan struct{}, 1), done: make(chan struct{}), workers: 8}
	if s.owner == "" {
		s.owner = store.NewInstanceID()
	}
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

// loop runs a pass at each interval or kick. While the store is
// unavailable it retries after a growing wait (backoff; kicks wait too),
// logging the outage once when it begins and once when it ends. On stop,
// the lease is released so another instance takes over at once.
func (s *sweeper) loop() {
	defer close(s.done)
	defer s.releaseLease()
	var retry time.Duration // while the store is unavailable
	for {
		interval := s.interval()
		wake := s.wake
		if retry > 0 {
			interval, wake = retry, nil
		}
		t := time.NewTimer(interval)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-wake:
			t.Stop()
		case <-t.C:
		}
		_, err := s.pass()
		retry = 0
		switch {
		case errors.Is(err, store.ErrUnavailable):
			var first bool
			retry, first = s.backoff.Fail()
			if first {
				s.logger().Error("store unavailable; sweeping backs off until it returns", zap.Error(err))
			}
		case err == nil || errors.Is(err, store.ErrClosed):
			if ok, down := s.backoff.Ok(); ok {
				s.logger().Warn("store reachable again; sweeping resumed", zap.Duration("down_for", down))
			}
		}
	}
}

// interval is the newest config's sweep interval.
func (s *sweeper) interval() time.Duration {
	if a := s.c.current(); a != nil && a.SweepInterval > 0 {
		return time.Duration(a.SweepInterval)
	}
	return DefaultSweepInterval
}

// holdLease takes or renews the sweeper lease, and logs when this
// instance starts or stops holding it.
func (s *sweeper) holdLease() (bool, error) {
	s.ttl = sweeperLeaseTTL(s.interval())
	held, err := s.c.db.AcquireLease(s.ctx, SweeperLease, s.owner, s.ttl)
	if err != nil {
		return false, err
	}
	if held {
		s.renewed = time.Now()
	}
	if held != s.holds || !s.known {
		s.holds, s.known = held, true
		if held {
			s.logger().Info("lease acquired: this instance sweeps", zap.String("lease", SweeperLease), zap.String("instance", s.owner), zap.Duration("ttl", s.ttl))
		} else {
			s.logger().Info("lease held by another instance: it sweeps", zap.String("lease", SweeperLease), zap.String("instance", s.owner))
		}
	}
	return held, nil
}

// stillHeld renews the lease if a third of it has passed since the last
// renewal, and reports whether this instance still holds it.
func (s *sweeper) stillHeld() bool {
	if time.Since(s.renewed) < s.ttl/3 {
		return s.holds
	}
	held, err := s.holdLease()
	if err != nil {
		s.noteErr(err)
		return false
	}
	return held
}

// releaseLease gives the lease up at stop, if held.
func (s *sweeper) releaseLease() {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	if !s.holds {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.c.db.ReleaseLease(ctx, SweeperLease, s.owner); err == nil {
		s.holds = false
		s.logger().Info("lease released", zap.String("lease", SweeperLease), zap.String("instance", s.owner))
	}
}

// noteErr keeps the first ErrUnavailable of a pass.
func (s *sweeper) noteErr(err error) {
	if errors.Is(err, store.ErrUnavailable) {
		s.unavailable.CompareAndSwap(nil, &err)
	}
}

// SweepStats counts what one sweep did. Settled counts intents this sweep
// finalized; Waiting those listed but not yet due (their own grace, longer
// for large uploads, has not passed), which were left alone.
type SweepStats struct {
	Settled, Waiting, Rechecked, Pruned, Deferred int
}

// sweep runs one pass with the newest config (if this instance holds the
// sweeper lease).
func (s *sweeper) sweep() SweepStats {
	st, _ := s.pass()
	return st
}

// pass runs one pass if this instance holds (or now takes) the sweeper
// lease. The error is the store's, if it was unavailable at some point.
func (s *sweeper) pass() (SweepStats, error) {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	var st SweepStats
	a := s.c.current()
	if a == nil {
		return st, nil
	}
	s.unavailable.Store(nil)
	held, err := s.holdLease()
	if err != nil {
		if !errors.Is(err, store.ErrUnavailable) && !errors.Is(err, store.ErrClosed) {
			s.logger().Error("taking the sweeper lease failed", zap.Error(err))
		}
		return st, err
	}
	if !held {
		return st, nil
	}
	st = s.sweepHeld(a)
	if p := s.unavailable.Load(); p != nil {
		return st, *p
	}
	return st, nil
}

// sweepHeld runs one pass with the config a, the lease held.
func (s *sweeper) sweepHeld(a *App) SweepStats {
	var st SweepStats
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
	// Expired intents a page at a time: their expiries are written
	// together (see upload.Service.SweepPage), and while one page's are
	// written (a synced write), the next page's objects are looked at.
	var finishing chan struct{} // closed once the previous page is done
	s.eachPage(store.ByExpiry, now.Add(-grace), func(page []*store.Intent) {
		items := make([]upload.SweepItem, 0, len(page))
		for _, in := range page {
			if p, ok := a.Profile(in.Profile); ok {
				items = append(items, upload.SweepItem{In: in, Profile: p})
			}
		}
		looked := svc.LookPage(s.ctx, items, s.workers, callTimeout)
		if finishing != nil {
			<-finishing
		}
		done := make(chan struct{})
		finishing = done
		go func() {
			defer close(done)
			looked.Finish()
			for i := range items {
				it := &items[i]
				if it.Err == nil && it.Out != nil && it.Out.Status == store.StatusPending {
					count(&st.Waiting, nil)
				} else {
					count(&st.Settled, it.Err)
				}
			}
		}()
	})
	if finishing != nil {
		<-finishing
	}
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
		case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrClosed):
			s.noteErr(err) // the pass backs off
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
	s.eachPage(idx, t, func(page []*store.Intent) {
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
			jobs <- in
		}
		close(jobs)
		wg.Wait()
	})
}

// eachPage calls fn with every page of an index due before t (damaged
// records left out: the store reported them; the others go on), one page
// after the other, while this instance holds the lease. The next page is
// listed while fn works on one: at most two pages are held here.
func (s *sweeper) eachPage(idx store.Index, t time.Time, fn func([]*store.Intent)) {
	type listing struct {
		page []*store.Intent
		next store.Cursor
		err  error
	}
	list := func(cur store.Cursor) listing {
		page, next, err := s.c.db.List(s.ctx, idx, t, cur, sweepPage)
		return listing{page, next, err}
	}
	var ahead chan listing // the next page, being listed
	defer func() {
		if ahead != nil {
			<-ahead
		}
	}()
	var cur store.Cursor
	for s.ctx.Err() == nil && s.unavailable.Load() == nil {
		if !s.stillHeld() {
			return // another instance sweeps now
		}
		var l listing
		if ahead != nil {
			l, ahead = <-ahead, nil
		} else {
			l = list(cur)
		}
		if l.err != nil {
			s.noteErr(l.err)
			if !errors.Is(l.err, store.ErrClosed) && !errors.Is(l.err, store.ErrUnavailable) {
				s.logger().Error("listing intents failed", zap.String("index", string(idx)), zap.Error(l.err))
			}
			return
		}
		if l.next != nil {
			ch := make(chan listing, 1)
			go func() { ch <- list(l.next) }()
			ahead = ch
		}
		fn(slices.DeleteFunc(l.page, func(in *store.Intent) bool { return in.Damaged != "" }))
		if l.next == nil {
			return
		}
		cur = l.next
	}
}
