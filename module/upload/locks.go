package upload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
)

// Locks serialise work on each intent within a process. Each intent has a
// lock of its own, made when first wanted and dropped when nobody holds or
// waits for it, so a call stuck on one intent (an S3 call that hangs)
// never delays another intent. The zero value is ready to use.
type Locks struct {
	mu sync.Mutex
	m  map[string]*intentLock
}

// intentLock is held by whoever has put the one token into ch; refs
// counts holders and waiters, so the entry lives exactly while wanted.
type intentLock struct {
	ch   chan struct{}
	refs int
}

// acquire takes the intent's lock, waiting at most until ctx is done; the
// returned func releases it.
func (l *Locks) acquire(ctx context.Context, id string) (func(), error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*intentLock)
	}
	il := l.m[id]
	if il == nil {
		il = &intentLock{ch: make(chan struct{}, 1)}
		l.m[id] = il
	}
	il.refs++
	l.mu.Unlock()

	select {
	case il.ch <- struct{}{}:
		return func() { <-il.ch; l.drop(id, il) }, nil
	case <-ctx.Done():
		l.drop(id, il)
		return nil, ctx.Err()
	}
}

func (l *Locks) drop(id string, il *intentLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if il.refs--; il.refs == 0 {
		delete(l.m, id)
	}
}

// held is the number of intents whose lock is held or waited for (tests).
func (l *Locks) held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// DefaultS3Timeout bounds each S3 call of a profile that sets none.
const DefaultS3Timeout = 30 * time.Second

// timedObjects bounds every call that may reach the network with the
// profile's timeout, so a hung S3 server holds no request (and no intent's
// lock) for longer.
type timedObjects struct {
	Objects
	d time.Duration
}

// objects is the profile's bucket with every network call bounded.
func (p *Profile) objects() Objects {
	d := p.S3Timeout
	if d <= 0 {
		d = DefaultS3Timeout
	}
	return timedObjects{Objects: p.Objects, d: d}
}

func (o timedObjects) PresignPost(ctx context.Context, pol bucket.Policy) (bucket.Post, error) {
	// Signing makes no S3 call, but credentials may resolve over the
	// network; with static keys nothing can wait, and a grant spares the
	// timer and context (a few allocations on every grant).
	if off, ok := o.Objects.(interface{ SignsOffline() bool }); ok && off.SignsOffline() {
		return o.Objects.PresignPost(ctx, pol)
	}
	return timed(ctx, o.d, func(ctx context.Context) (bucket.Post, error) { return o.Objects.PresignPost(ctx, pol) })
}

// Copy is given longer for larger objects: a server-side copy of
// gigabytes takes the store a while.
func (o timedObjects) Copy(ctx context.Context, src, dst, etag string, size int64, sha256 bool) (string, error) {
	d := o.d + time.Duration(size/(16<<20))*time.Second
	return timed(ctx, d, func(ctx context.Context) (string, error) { return o.Objects.Copy(ctx, src, dst, etag, size, sha256) })
}

func (o timedObjects) PresignPut(ctx context.Context, r bucket.PutRequest) (bucket.Put, error) {
	return timed(ctx, o.d, func(ctx context.Context) (bucket.Put, error) { return o.Objects.PresignPut(ctx, r) })
}

func (o timedObjects) PresignPartSHA256(ctx context.Context, key, uploadID string, part int32, expires time.Duration, sum string) (bucket.Put, error) {
	return timed(ctx, o.d, func(ctx context.Context) (bucket.Put, error) {
		return o.Objects.PresignPartSHA256(ctx, key, uploadID, part, expires, sum)
	})
}

func (o timedObjects) Stat(ctx context.Context, key string) (bucket.Object, error) {
	return timed(ctx, o.d, func(ctx context.Context) (bucket.Object, error) { return o.Objects.Stat(ctx, key) })
}

func (o timedObjects) Inspect(ctx context.Context, key string, n int64) (bucket.Object, []byte, error) {
	var head []byte
	obj, err := timed(ctx, o.d, func(ctx context.Context) (bucket.Object, error) {
		obj, h, err := o.Objects.Inspect(ctx, key, n)
		head = h
		return obj, err
	})
	return obj, head, err
}

func (o timedObjects) Delete(ctx context.Context, key string) error {
	_, err := timed(ctx, o.d, func(ctx context.Context) (struct{}, error) { return struct{}{}, o.Objects.Delete(ctx, key) })
	return err
}

func (o timedObjects) CreateMultipart(ctx context.Context, m bucket.Multipart) (string, error) {
	return timed(ctx, o.d, func(ctx context.Context) (string, error) { return o.Objects.CreateMultipart(ctx, m) })
}

func (o timedObjects) PresignPart(ctx context.Context, key, uploadID string, part int32, expires time.Duration) (string, error) {
	return timed(ctx, o.d, func(ctx context.Context) (string, error) {
		return o.Objects.PresignPart(ctx, key, uploadID, part, expires)
	})
}

func (o timedObjects) ListParts(ctx context.Context, key, uploadID string) ([]bucket.Part, error) {
	return timed(ctx, o.d, func(ctx context.Context) ([]bucket.Part, error) { return o.Objects.ListParts(ctx, key, uploadID) })
}

func (o timedObjects) CompleteMultipart(ctx context.Context, key, uploadID string, parts []bucket.Part) error {
	_, err := timed(ctx, o.d, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, o.Objects.CompleteMultipart(ctx, key, uploadID, parts)
	})
	return err
}

func (o timedObjects) AbortMultipart(ctx context.Context, key, uploadID string) error {
	_, err := timed(ctx, o.d, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, o.Objects.AbortMultipart(ctx, key, uploadID)
	})
	return err
}

// errTimedOut marks an S3 call cut off by the profile's timeout.
var errTimedOut = errors.New("S3 call timed out")

// timed runs f with the timeout; an error of a call the timeout cut off
// (not the caller's own deadline) is marked errTimedOut as well.
func timed[T any](ctx context.Context, d time.Duration, f func(context.Context) (T, error)) (T, error) {
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := f(tctx)
	if err != nil && tctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w after %v: %w", errTimedOut, d, err)
	}
	return v, err
}

// storageErr is the client's error for a failed S3 call: a timeout is
// told apart, both decide nothing and are worth retrying.
func storageErr(err error) error {
	if errors.Is(err, errTimedOut) {
		return ErrStorageTimeout
	}
	return ErrStorage
}
