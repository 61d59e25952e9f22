package upload

import (
	"context"
	"sync"
	"sync/atomic"
)

// A client's complete is answered once its outcome is durable; the
// promoted intent's staging object is deleted after the answer (see
// carryOutPromotion). That deletion is S3's slowest call of the three a
// promotion makes, and nothing the client sees depends on it: the final
// object is in place and the completion recorded, with the intent left
// unsettled until the staging key is clean, so a deletion cut off by a
// crash or a stop is made by the re-check after expiry (recheckPromoted),
// as one that failed always was.

// maxCleanups bounds the deletions running after their answers; beyond
// it a complete deletes before answering, so a slow store slows the
// callers instead of piling up goroutines.
const maxCleanups = 256

// cleanups counts the work running after its answer. Its zero value is
// ready.
type cleanups struct {
	running atomic.Int64
	wg      sync.WaitGroup
}

// start reserves a slot for work after the answer, or reports none free.
func (c *cleanups) start() bool {
	if c.running.Add(1) > maxCleanups {
		c.running.Add(-1)
		return false
	}
	c.wg.Add(1)
	return true
}

func (c *cleanups) done() {
	c.running.Add(-1)
	c.wg.Done()
}

// Wait returns once the work running after its answer (staging objects'
// deletions) has ended: tests, and a caller that stops the process and
// wants the bucket clean.
func (s *Service) Wait() { s.cleanups.wg.Wait() }

// answerFirstKey marks a context whose caller is answered before the
// cleanup that follows its outcome (a client's complete).
type answerFirstKey struct{}

func withAnswerFirst(ctx context.Context) context.Context {
	return context.WithValue(ctx, answerFirstKey{}, true)
}

func answerFirst(ctx context.Context) bool {
	v, _ := ctx.Value(answerFirstKey{}).(bool)
	return v
}
