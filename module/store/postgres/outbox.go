package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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

// decodeEvent decodes an event's row; a row that does not decode is a
// damaged record.
func decodeEvent(id string, val []byte) (*store.Event, error) {
	ev := new(store.Event)
	if err := json.Unmarshal(val, ev); err != nil {
		return nil, &damagedError{kind: "event", id: id, err: err}
	}
	return ev, nil
}

// OutboxStats implements store.Store: min(created_ns) is one seek into the
// partial index of pending events by creation time; the count is an
// index-only scan of the same index, whose cost grows with the number of
// pending events (see docs/fleet.md for what it costs at 100k).
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
	// The state has a column of its own: a row whose JSON is damaged is
	// listed (as a stub) under the state its column holds.
	rows, err := s.pool.Query(ctx, "SELECT id, event FROM "+s.n.events+
		" WHERE id > $1 AND ($2 = '' OR state = $2) ORDER BY id LIMIT $3", after, string(state), limit)
	if err != nil {
		return nil, s.mapErr(err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var id string
		var val []byte
		if err := rows.Scan(&id, &val); err != nil {
			return nil, s.mapErr(err)
		}
		ev, err := decodeEvent(id, val)
		if err != nil {
			s.noteDamaged(err)
			out = append(out, store.Event{ID: id, Damaged: errors.Unwrap(err).Error()})
			continue
		}
		out = append(out, *ev)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.mapErr(err)
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
	ev, err := decodeEvent(id, val)
	return ev, s.noteDamaged(err)
}

// profilesWithPending is a recursive CTE, p(profile), listing the profiles
// that have pending events by a skip scan of the index of pending events
// by profile: one index seek per profile, however long its backlog.
const profilesWithPending = `WITH RECURSIVE p(profile) AS (
	(SELECT profile FROM {events} WHERE state = 'pending' ORDER BY profile LIMIT 1)
	UNION ALL
	SELECT (SELECT e.profile FROM {events} e WHERE e.state = 'pending' AND e.profile > p.profile ORDER BY e.profile LIMIT 1)
	FROM p WHERE p.profile IS NOT NULL)`

// dueEventsSQL is DueEvents' query: $1 the time, $2 the per-profile limit.
func dueEventsSQL(n names) string {
	return n.expand(profilesWithPending + `
		SELECT e.id, e.profile FROM p CROSS JOIN LATERAL (
			SELECT id, profile, due_ns FROM {events}
			WHERE state = 'pending' AND profile = p.profile AND due_ns <= $1
			ORDER BY due_ns, id LIMIT $2) e
		WHERE p.profile IS NOT NULL
		ORDER BY e.profile, e.due_ns, e.id`)
}

// DueEvents implements store.Store: for each profile with pending events
// (a skip scan), up to perProfile of its earliest due events, read from
// the index by profile and due time. The cost grows with the number of
// profiles and perProfile, not with any profile's backlog.
func (s *Store) DueEvents(ctx context.Context, t time.Time, perProfile int) ([]store.Due, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rows, err := s.pool.Query(ctx, dueEventsSQL(s.n), ns(t), perProfile)
	if err != nil {
		return nil, s.mapErr(err)
	}
	due, err := pgx.CollectRows(rows, pgx.RowToStructByPos[store.Due])
	return due, s.mapErr(err)
}

// ClaimDue implements store.Store: the due events DueEvents would list,
// less those under another live claim, are locked with FOR UPDATE SKIP
// LOCKED (so instances claiming at once split the work instead of
// queueing) and marked claimed by owner until t+lease, in one statement.
func (s *Store) ClaimDue(ctx context.Context, owner string, t time.Time, lease time.Duration, perProfile int) ([]store.Due, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rows, err := s.pool.Query(ctx, s.n.expand(profilesWithPending+`,
		c AS MATERIALIZED (
			SELECT e.id FROM p CROSS JOIN LATERAL (
				SELECT id FROM {events}
				WHERE state = 'pending' AND profile = p.profile AND due_ns <= $1
					AND (claim_until_ns IS NULL OR claim_until_ns <= $1)
				ORDER BY due_ns, id LIMIT $2 FOR UPDATE SKIP LOCKED) e
			WHERE p.profile IS NOT NULL)
		UPDATE {events} SET claimed_by = $3, claim_until_ns = $4 WHERE id = ANY(ARRAY(SELECT id FROM c))
		RETURNING id, profile, due_ns`), ns(t), perProfile, owner, ns(t.Add(lease)))
	if err != nil {
		return nil, s.mapErr(err)
	}
	type claimed struct {
		ID, Profile string
		Due         int64
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[claimed])
	if err != nil {
		return nil, s.mapErr(err)
	}
	slices.SortFunc(got, func(a, b claimed) int {
		return cmp.Or(strings.Compare(a.Profile, b.Profile), cmp.Compare(a.Due, b.Due), strings.Compare(a.ID, b.ID))
	})
	out := make([]store.Due, len(got))
	for i, c := range got {
		out[i] = store.Due{EventID: c.ID, Profile: c.Profile}
	}
	return out, nil
}

// Unclaim implements store.Store.
func (s *Store) Unclaim(ctx context.Context, owner string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	_, err = s.pool.Exec(ctx, "UPDATE "+s.n.events+" SET claimed_by = NULL, claim_until_ns = NULL WHERE id = ANY($1) AND claimed_by = $2", ids, owner)
	return s.mapErr(err)
}

// nowNS is the database's clock in Unix nanoseconds (microsecond
// precision): leases are timed by one clock for the whole fleet.
const nowNS = "(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint"

// AcquireLease implements store.Store: the lease's row is taken if
// missing, held by owner, or expired by the database's clock.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return false, err
	}
	defer cancel()
	rows, err := s.pool.Query(ctx, "INSERT INTO "+s.n.leases+" AS l (name, owner, until_ns) VALUES ($1, $2, "+nowNS+" + $3)"+
		" ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until_ns = excluded.until_ns"+
		" WHERE l.owner = excluded.owner OR l.until_ns <= "+nowNS+" RETURNING owner", name, owner, ttl.Nanoseconds())
	if err != nil {
		return false, s.mapErr(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, s.mapErr(err)
	}
	return len(got) == 1, nil
}

// ReleaseLease implements store.Store.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	_, err = s.pool.Exec(ctx, "DELETE FROM "+s.n.leases+" WHERE name = $1 AND owner = $2", name, owner)
	return s.mapErr(err)
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
	ev, err := decodeEvent(id, val)
	if err != nil {
		return nil, err
	}
	if d.Version != 0 && d.Version != ev.Delivery.Version {
		return nil, store.ErrStateChanged
	}
	d.Version = ev.Delivery.Version + 1
	ev.Delivery = d
	val, err = json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encoding event: %w", err)
	}
	// A new delivery record ends the attempt: the claim goes with it.
	_, err = tx.Exec(ctx, "UPDATE "+n.events+" SET state = $2, due_ns = $3, event = $4::text::json, claimed_by = NULL, claim_until_ns = NULL WHERE id = $1",
		id, string(d.State), dueNS(d), string(val))
	return ev, err
}
