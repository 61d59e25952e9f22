package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// lazyStore stands in for a store whose database could not be reached
// when the app started: Start succeeds, every call answers ErrUnavailable
// (grants 503 store_unavailable, the dispatcher and sweeper back off)
// while it opens the store in the background, retrying with a growing
// wait; once open, every call goes to the store.
type lazyStore struct {
	open func(ctx context.Context) (store.Store, error)
	log  atomic.Pointer[zap.Logger]

	mu      sync.Mutex
	db      store.Store // once open
	lastErr error
	closed  bool

	ready  atomic.Pointer[store.Store]
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// newLazyStore starts opening the store in the background; first is the
// error of the attempt made at start.
func newLazyStore(open func(ctx context.Context) (store.Store, error), first error, logger *zap.Logger) *lazyStore {
	l := &lazyStore{open: open, lastErr: first, done: make(chan struct{})}
	l.log.Store(logger)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	logger.Warn("intent store unavailable at start; grants answer 503 store_unavailable until it is reached, which is retried in the background",
		zap.Error(first))
	go l.retry()
	return l
}

func (l *lazyStore) retry() {
	defer close(l.done)
	bo := store.Backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second}
	bo.Fail() // the attempt at start
	lastMsg := ""
	for {
		wait, _ := bo.Fail()
		t := time.NewTimer(wait)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(l.ctx, storeOpenTimeout)
		db, err := l.open(ctx)
		cancel()
		l.mu.Lock()
		if err == nil && l.closed {
			l.mu.Unlock()
			db.Close()
			return
		}
		if err == nil {
			l.db = db
			l.ready.Store(&db)
			l.mu.Unlock()
			if s, ok := db.(interface{ SetLogger(*zap.Logger) }); ok {
				s.SetLogger(l.log.Load())
			}
			_, down := bo.Ok()
			l.log.Load().Warn("intent store reached; serving", zap.Duration("unavailable_for", down))
			return
		}
		l.lastErr = err
		l.mu.Unlock()
		if !errors.Is(err, store.ErrUnavailable) && err.Error() != lastMsg {
			// Reachable, but refused (a schema newer than this build, say):
			// an operator must act; logged once per distinct error.
			lastMsg = err.Error()
			l.log.Load().Error("opening the intent store failed; retrying", zap.Error(err))
		}
	}
}

// store returns the open store, or the error every call answers until then.
func (l *lazyStore) store() (store.Store, error) {
	if p := l.ready.Load(); p != nil {
		return *p, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, store.ErrClosed
	}
	if l.db != nil {
		return l.db, nil
	}
	if errors.Is(l.lastErr, store.ErrUnavailable) {
		return nil, fmt.Errorf("not reached since start: %w", l.lastErr)
	}
	return nil, fmt.Errorf("%w: not opened since start: %w", store.ErrUnavailable, l.lastErr)
}

// SetLogger makes the store log to lg from now on.
func (l *lazyStore) SetLogger(lg *zap.Logger) {
	if lg == nil {
		return
	}
	l.log.Store(lg)
	if p := l.ready.Load(); p != nil {
		if s, ok := (*p).(interface{ SetLogger(*zap.Logger) }); ok {
			s.SetLogger(lg)
		}
	}
}

// Close stops the retries and closes the store if it was opened.
func (l *lazyStore) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	<-l.done
	l.mu.Lock()
	db := l.db
	l.mu.Unlock()
	if db != nil {
		return db.Close()
	}
	return nil
}

func (l *lazyStore) Create(ctx context.Context, in *store.Intent) error {
	db, err := l.store()
	if err != nil {
		return err
	}
	return db.Create(ctx, in)
}

func (l *lazyStore) Get(ctx context.Context, id string) (*store.Intent, error) {
	db, err := l.store()
	if err != nil {
		return nil, err
	}
	return db.Get(ctx, id)
}

func (l *lazyStore) Update(ctx context.Context, id string, from store.Status, t store.Transition) (*store.Intent, error) {
	db, err := l.store()
	if err != nil {
		return nil, err
	}
	return db.Update(ctx, id, from, t)
}

func (l *lazyStore) UpdateBatch(ctx context.Context, ups []store.BatchUpdate) error {
	db, err := l.store()
	if err != nil {
		for i := range ups {
			ups[i].Out, ups[i].Err = nil, err
		}
		return err
	}
	return db.UpdateBatch(ctx, ups)
}

func (l *lazyStore) Annotate(ctx context.Context, id string, from store.Status, fn func(*store.Intent)) (*store.Intent, error) {
	db, err := l.store()
	if err != nil {
		return nil, err
	}
	return db.Annotate(ctx, id, from, fn)
}

func (l *lazyStore) List(ctx context.Context, idx store.Index, t time.Time, after store.Cursor, limit int) ([]*store.Intent, store.Cursor, error) {
	db, err := l.store()
	if err != nil {
		return nil, nil, err
	}
	return db.List(ctx, idx, t, after, limit)
}

func (l *lazyStore) ListStatus(ctx context.Context, status store.Status, profile string, after store.Cursor, limit int) ([]*store.Intent, store.Cursor, error) {
	db, err := l.store()
	if err != nil {
		return nil, nil, err
	}
	return db.ListStatus(ctx, status, profile, after, limit)
}

func (l *lazyStore) Prune(ctx context.Context, id string) error {
	db, err := l.store()
	if err != nil {
		return err
	}
	return db.Prune(ctx, id)
}

func (l *lazyStore) OutboxStats(ctx context.Context) (int, time.Time, error) {
	db, err := l.store()
	if err != nil {
		return 0, time.Time{}, err
	}
	return db.OutboxStats(ctx)
}

func (l *lazyStore) Events(ctx context.Context, state store.DeliveryState, after string, limit int) ([]store.Event, error) {
	db, err := l.store()
	if err != nil {
		return nil, err
	}
	return db.Events(ctx, state, after, limit)
}

func (l *lazyStore) Event(ctx context.Context, id string) (*store.Event, error) {
	db, err := l.store()
	if err != nil {
		return nil, err
	}
	return db.Event(ctx, id)
}

func (l *lazyStore) DueEvents(ctx context.Context, t time.Time, perProfile int) ([]store.Due, error) {
	db, err := l.store()
	if err != nil {
		return nil, err
	}
	return db.DueEvents(ctx, t, perProfile)
}

func (l *lazyStore) ClaimDue(ctx context.Context, owner string, t time.Time, lease time.Duration, perProfile int) ([]store.Due, error) {
	db, err := l.store()
	if err != nil {
		return nil, err
	}
	return db.ClaimDue(ctx, owner, t, lease, perProfile)
}

func (l *lazyStore) Unclaim(ctx context.Context, owner string, ids []string) error {
	db, err := l.store()
	if err != nil {
		return err
	}
	return db.Unclaim(ctx, owner, ids)
}

func (l *lazyStore) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	db, err := l.store()
	if err != nil {
		return false, err
	}
	return db.AcquireLease(ctx, name, owner, ttl)
}

func (l *lazyStore) ReleaseLease(ctx context.Context, name, owner string) error {
	db, err := l.store()
	if err != nil {
		return err
	}
	return db.ReleaseLease(ctx, name, owner)
}

func (l *lazyStore) SetDelivery(ctx context.Context, id string, d store.Delivery) (*store.Event, error) {
	db, err := l.store()
	if err != nil {
		return nil, err
	}
	return db.SetDelivery(ctx, id, d)
}

func (l *lazyStore) SetDeliveries(ctx context.Context, updates map[string]store.Delivery) error {
	db, err := l.store()
	if err != nil {
		return err
	}
	return db.SetDeliveries(ctx, updates)
}

var _ store.Store = (*lazyStore)(nil)
