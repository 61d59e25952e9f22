package webhook

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// skipCountStore counts delivery writes; its first SetDeliveries waits
// until the rest of a backlog is queued for the recorder (or a bound).
type skipCountStore struct {
	store.Store
	mu          sync.Mutex
	one, many   int
	records     int
	ready       func() bool
	firstWaited bool
}

func (s *skipCountStore) SetDelivery(ctx context.Context, id string, d store.Delivery) (*store.Event, error) {
	s.mu.Lock()
	s.one++
	s.mu.Unlock()
	return s.Store.SetDelivery(ctx, id, d)
}

func (s *skipCountStore) SetDeliveries(ctx context.Context, u map[string]store.Delivery) error {
	s.mu.Lock()
	first := !s.firstWaited
	s.firstWaited = true
	s.many++
	s.records += len(u)
	s.mu.Unlock()
	if first {
		for deadline := time.Now().Add(10 * time.Second); !s.ready() && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	return s.Store.SetDeliveries(ctx, u)
}

// TestSkippedEventsGroupCommitted: the events of a profile without a
// webhook are marked skipped through the recorder's group commit (one
// synced write for all those waiting), not by a synced write each on the
// dispatcher's loop; each is recorded as before.
func TestSkippedEventsGroupCommitted(t *testing.T) {
	db, err := store.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 20
	now := time.Now().UTC()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("in%03d", i)
		in := &store.Intent{ID: id, Profile: "nowebhook", Bucket: "b", Key: "k/" + id, ContentType: "image/png", MaxSize: 10,
			Status: store.StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
		if err := db.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Update(ctx, id, store.StatusPending, func(x *store.Intent) (store.Event, error) {
			x.Status = store.StatusCompleted
			return store.Event{ID: "evt_" + id, Type: store.EventCompleted, CreatedAt: now}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	cs := &skipCountStore{Store: db}
	d := &Dispatcher{Store: cs, Poll: 20 * time.Millisecond,
		Endpoints: func(string) (*Endpoint, Lookup) { return nil, Ready }}
	cs.ready = func() bool { return len(d.records) >= n-1 }
	d.Start()
	defer d.Stop(2 * time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, err := db.Events(ctx, store.DeliverySkipped, "", n+1)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == n {
			for _, ev := range evs {
				if ev.Delivery.LastError != "profile has no webhook configured" || ev.Delivery.Version != 2 || !ev.Delivery.NextAttemptAt.IsZero() {
					t.Fatalf("skipped record %+v", ev.Delivery)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events skipped", len(evs), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.one != 0 || cs.many != 2 || cs.records != n {
		t.Fatalf("%d single writes and %d group writes of %d records, want 0 and 2 of %d", cs.one, cs.many, cs.records, n)
	}
}
