package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// dueNS is where an event stands in the due index: its next attempt while
// pending, nowhere (NULL) otherwise.
func dueNS(d store.Delivery) sql.NullInt64 {
	if d.State != store.DeliveryPending {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: ns(d.NextAttemptAt), Valid: true}
}

// insertEvent queues the insert of a new event.
func insertEvent(b *pgx.Batch, n names, ev *store.Event) error {
	val, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding event: %w", err)
	}
	b.Queue(`INSERT INTO `+n.events+` (id, intent_id, profile, type, created_ns, state, due_ns, event)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::json)`,
		ev.ID, ev.Intent.ID, ev.Intent.Profile, ev.Type, ns(ev.CreatedAt), string(ev.Delivery.State), dueNS(ev.Delivery), string(val))
	return nil
}

func decodeEvent(val []byte) (*store.Event, error) {
	ev := new(store.Event)
	if err := json.Unmarshal(val, ev); err != nil {
		return nil, fmt.Errorf("decoding event: %w", err)
	}
	return ev, nil
}

// OutboxStats implements store.Store.
func (s *Store) OutboxStats(ctx context.Context) (int, time.Time, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	defer cancel()
	var n int
	var oldest sql.NullInt64
	err = s.pool.QueryRow(ctx, "SELECT count(*), min(created_ns) FROM "+s.n.events+" WHERE state = 'pending'").Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, s.mapErr(err)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, time.Unix(0, oldest.Int64), nil
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, state store.DeliveryState, after string, limit int) ([]store.Event, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT event FROM "+s.n.events+
		" WHERE id > $1 AND ($2 = '' OR state = $2) ORDER BY id LIMIT $3", after, string(state), limit)
	if err != nil {
		return nil, s.mapErr(err)
	}
	vals, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, s.mapErr(err)
	}
	out := make([]store.Event, 0, len(vals))
	for _, v := range vals {
		ev, err := decodeEvent(v)
		if err != nil {
			return nil, err
		}
		out = append(out, *ev)
	}
	return out, nil
}

// Event implements store.Store.
func (s *Store) Event(ctx context.Context, id string) (*store.Event, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	var val []byte
	if err := s.pool.QueryRow(ctx, "SELECT event FROM "+s.n.events+" WHERE id = $1", id).Scan(&val); err != nil {
		return nil, s.mapErr(err)
	}
	return decodeEvent(val)
}

// DueEvents implements store.Store, from the partial index of pending
// events by next attempt.
// Each profile with due events gets up to perProfile of them, so one
// profile's backlog never hides another's.
func (s *Store) DueEvents(ctx context.Context, t time.Time, perProfile int) ([]store.Due, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT e.id, e.profile FROM (SELECT DISTINCT profile FROM "+s.n.events+
		" WHERE state = 'pending' AND due_ns <= $1) p CROSS JOIN LATERAL (SELECT id, profile, due_ns FROM "+s.n.events+
		" WHERE state = 'pending' AND profile = p.profile AND due_ns <= $1 ORDER BY due_ns, id LIMIT $2) e"+
		" ORDER BY e.profile, e.due_ns, e.id", ns(t), perProfile)
	if err != nil {
		return nil, s.mapErr(err)
	}
	due, err := pgx.CollectRows(rows, pgx.RowToStructByPos[store.Due])
	return due, s.mapErr(err)
}

// SetDelivery implements store.Store.
func (s *Store) SetDelivery(ctx context.Context, id string, d store.Delivery) (*store.Event, error) {
	var out *store.Event
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		out, err = setDelivery(ctx, tx, s.n, id, d)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetDeliveries implements store.Store: one transaction for all.
func (s *Store) SetDeliveries(ctx context.Context, updates map[string]store.Delivery) error {
	return s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		for id, d := range updates {
			if _, err := setDelivery(ctx, tx, s.n, id, d); err != nil {
				return err
			}
		}
		return nil
	})
}

func setDelivery(ctx context.Context, tx pgx.Tx, n names, id string, d store.Delivery) (*store.Event, error) {
	var val []byte
	if err := tx.QueryRow(ctx, "SELECT event FROM "+n.events+" WHERE id = $1 FOR UPDATE", id).Scan(&val); err != nil {
		return nil, err
	}
	ev, err := decodeEvent(val)
	if err != nil {
		return nil, err
	}
	ev.Delivery = d
	val, err = json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encoding event: %w", err)
	}
	_, err = tx.Exec(ctx, "UPDATE "+n.events+" SET state = $2, due_ns = $3, event = $4::text::json WHERE id = $1",
		id, string(d.State), dueNS(d), string(val))
	return ev, err
}
