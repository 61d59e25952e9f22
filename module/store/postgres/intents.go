package postgres

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// createReq is one Create waiting for the group commit.
type createReq struct {
	in  *store.Intent
	val string // the intent's JSON
	res chan error
}

// maxCreateBatch bounds one group commit of new intents.
const maxCreateBatch = 128

// committers is how many group commits may be in flight at once: enough to
// keep a round trip's wait from idling the pool, a fraction of the pool so
// that reads still find connections.
func committers(maxConns int32) int {
	return max(1, min(4, int(maxConns)/2))
}

// Create implements store.Store.
//
// Concurrent creates are group-committed: the intents waiting while a
// commit is in flight go together in the next one, one statement and one
// commit. Each call returns only once its own row is committed.
func (s *Store) Create(ctx context.Context, in *store.Intent) error {
	if in.Status != store.StatusPending {
		return fmt.Errorf("creating intent %s: status must be pending, not %q", in.ID, in.Status)
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	val, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding intent: %w", err)
	}
	req := createReq{in: in, val: string(val), res: make(chan error, 1)}
	select {
	case s.creates <- req:
	case <-s.quit:
		return store.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.res:
		return err
	case <-s.stopped:
		select {
		case err := <-req.res:
			return err
		default:
			return store.ErrClosed
		}
	case <-ctx.Done():
		// The intent may still be committed; it is then a pending intent
		// nobody holds a grant for, and expires.
		return ctx.Err()
	}
}

// committer writes waiting creates in batches until the store closes.
func (s *Store) committer() {
	for {
		var batch []createReq
		select {
		case r := <-s.creates:
			batch = append(batch, r)
		case <-s.quit:
			return
		}
	drain:
		for len(batch) < maxCreateBatch {
			select {
			case r := <-s.creates:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.createAll(batch)
	}
}

// createAll inserts a batch in one statement. Ids already taken, in the
// table or earlier in the batch, are answered ErrExists without failing
// the others.
func (s *Store) createAll(batch []createReq) {
	batch, quoted := splitQuoted(batch)
	if len(quoted) > 0 {
		s.createQuoted(quoted)
	}
	if len(batch) == 0 {
		return
	}
	seen := make(map[string]bool, len(batch))
	var ids, profiles, statuses, vals []string
	var expires, updated []int64
	var insert []createReq
	for _, r := range batch {
		if seen[r.in.ID] {
			r.res <- store.ErrExists
			continue
		}
		seen[r.in.ID] = true
		insert = append(insert, r)
		ids = append(ids, r.in.ID)
		profiles = append(profiles, r.in.Profile)
		statuses = append(statuses, string(r.in.Status))
		expires = append(expires, ns(r.in.ExpiresAt))
		updated = append(updated, ns(r.in.UpdatedAt))
		vals = append(vals, r.val)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*s.timeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `INSERT INTO `+s.n.intents+` (id, profile, status, settled, expires_ns, updated_ns, intent)
		SELECT id, profile, status, false, e, u, j::json
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[]) AS t(id, profile, status, e, u, j)
		ORDER BY id -- one order for every batch: concurrent batches with the same ids wait, never deadlock
		ON CONFLICT (id) DO NOTHING RETURNING id`, ids, profiles, statuses, expires, updated, vals)
	var created []string
	if err == nil {
		created, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		err = s.mapErr(err)
		for _, r := range insert {
			r.res <- err
		}
		return
	}
	ok := make(map[string]bool, len(created))
	for _, id := range created {
		ok[id] = true
	}
	for _, r := range insert {
		if ok[r.in.ID] {
			r.res <- nil
		} else {
			r.res <- store.ErrExists
		}
	}
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (*store.Intent, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	in, err := getIntent(ctx, s.pool, s.n, id, false)
	return in, s.mapErr(err)
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// getIntent reads one intent, locking its row when forUpdate (in a
// transaction).
func getIntent(ctx context.Context, q querier, n names, id string, forUpdate bool) (*store.Intent, error) {
	sql := "SELECT intent FROM " + n.intents + " WHERE id = $1"
	if forUpdate {
		sql += " FOR UPDATE"
	}
	var val []byte
	if err := q.QueryRow(ctx, sql, id).Scan(&val); err != nil {
		return nil, err
	}
	in := new(store.Intent)
	if err := json.Unmarshal(val, in); err != nil {
		return nil, &damagedError{kind: "intent", id: id, err: err}
	}
	return in, nil
}

// putIntent queues the write of an existing intent's row.
func putIntent(b *pgx.Batch, n names, in *store.Intent) error {
	val, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding intent: %w", err)
	}
	b.Queue(`UPDATE `+n.intents+` SET profile = $2, status = $3, settled = $4, expires_ns = $5, updated_ns = $6, intent = $7::text::json WHERE id = $1`,
		in.ID, in.Profile, string(in.Status), in.Settled, ns(in.ExpiresAt), ns(in.UpdatedAt), string(val))
	return nil
}

// Update implements store.Store. The intent's row is locked (SELECT ...
// FOR UPDATE) from the read to the commit, so concurrent updates of one
// intent queue up and each later one finds the status changed; the intent
// and its event are written in the same transaction.
func (s *Store) Update(ctx context.Context, id string, from store.Status, t store.Transition) (*store.Intent, error) {
	var out *store.Intent
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		in, err := getIntent(ctx, tx, s.n, id, true)
		if err != nil {
			return err
		}
		if in.Status != from {
			return store.ErrStateChanged
		}
		ev, err := t(in)
		if err != nil {
			return err
		}
		if ev.ID == "" || ev.Type == "" {
			return fmt.Errorf("transition of intent %s returned no event", id)
		}
		in.EventID = ev.ID
		in.Events = append(in.Events, ev.ID)
		ev.Intent = *in
		ev.Intent.Events = nil
		ev.Delivery = store.Delivery{State: store.DeliveryPending, NextAttemptAt: ev.CreatedAt, Version: 1}
		b := new(pgx.Batch)
		if err := putIntent(b, s.n, in); err != nil {
			return err
		}
		if err := insertEvent(b, s.n, &ev); err != nil {
			return err
		}
		queueRelease(b, s.n, from, in)
		out = in
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Annotate implements store.Store, locking the row as Update does.
func (s *Store) Annotate(ctx context.Context, id string, from store.Status, fn func(*store.Intent)) (*store.Intent, error) {
	var out *store.Intent
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		in, err := getIntent(ctx, tx, s.n, id, true)
		if err != nil {
			return err
		}
		if in.Status != from {
			return store.ErrStateChanged
		}
		old := *in
		fn(in)
		if in.Status != from || !in.ExpiresAt.Equal(old.ExpiresAt) || in.ID != id {
			return fmt.Errorf("annotating intent %s changed its status, expiry or id", id)
		}
		b := new(pgx.Batch)
		if err := putIntent(b, s.n, in); err != nil {
			return err
		}
		out = in
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listings are the time indexes: which intents each holds, and by which
// time it orders them. Partial indexes with the same predicates serve them.
var listings = map[store.Index]struct{ where, col string }{
	store.ByExpiry:   {"status = 'pending'", "expires_ns"},
	store.ByRecheck:  {"status <> 'pending' AND NOT settled", "expires_ns"},
	store.ByFinished: {"status <> 'pending' AND settled", "updated_ns"},
}

// List implements store.Store. Its cursor is the last intent's time (Unix
// nanoseconds, 8 bytes big-endian) and id, as the Badger store's index key.
func (s *Store) List(ctx context.Context, idx store.Index, t time.Time, after store.Cursor, limit int) ([]*store.Intent, store.Cursor, error) {
	l, ok := listings[idx]
	if !ok {
		return nil, nil, fmt.Errorf("unknown index %q", idx)
	}
	sql := "SELECT intent, " + l.col + ", id FROM " + s.n.intents + " WHERE " + l.where + " AND " + l.col + " < $1"
	args := []any{ns(t), limit + 1}
	if after != nil {
		if len(after) < 8 {
			return nil, nil, errors.New("invalid cursor")
		}
		sql += " AND (" + l.col + ", id) > ($3, $4)"
		args = append(args, int64(binary.BigEndian.Uint64(after)), string(after[8:]))
	}
	sql += " ORDER BY " + l.col + ", id LIMIT $2"
	return s.page(ctx, sql, args, limit, func(sortNS int64, id string) store.Cursor {
		return append(binary.BigEndian.AppendUint64(nil, uint64(sortNS)), id...)
	})
}

// ListStatus implements store.Store. Without a profile, intents come in
// profile then id order, as from the Badger store's status index; the
// cursor is the last intent's profile (length-prefixed) and id.
func (s *Store) ListStatus(ctx context.Context, status store.Status, profile string, after store.Cursor, limit int) ([]*store.Intent, store.Cursor, error) {
	sql := "SELECT intent, 0::bigint, id, profile FROM " + s.n.intents + " WHERE status = $1"
	args := []any{string(status), limit + 1}
	if profile != "" {
		args = append(args, profile)
		sql += fmt.Sprintf(" AND profile = $%d", len(args))
	}
	if after != nil {
		l, k := binary.Uvarint(after)
		if k <= 0 || uint64(len(after)-k) < l {
			return nil, nil, errors.New("invalid cursor")
		}
		args = append(args, string(after[k:k+int(l)]), string(after[k+int(l):]))
		sql += fmt.Sprintf(" AND (profile, id) > ($%d, $%d)", len(args)-1, len(args))
	}
	sql += " ORDER BY profile, id LIMIT $2"
	return s.page(ctx, sql, args, limit, nil)
}

// page runs a listing query that asks for one row more than limit, and
// returns up to limit intents and, if that row exists, the cursor of the
// last one returned. cursor builds it from the row's sort time and id; nil
// means the row's fourth column is a profile to length-prefix.
func (s *Store) page(ctx context.Context, sql string, args []any, limit int, cursor func(int64, string) store.Cursor) ([]*store.Intent, store.Cursor, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer cancel()
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, s.mapErr(err)
	}
	defer rows.Close()
	var out []*store.Intent
	var next store.Cursor
	more := false
	for rows.Next() {
		if len(out) == limit {
			more = true
			break
		}
		var val []byte
		var sortNS int64
		var id, profile string
		dest := []any{&val, &sortNS, &id}
		if cursor == nil {
			dest = append(dest, &profile)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, s.mapErr(err)
		}
		in := new(store.Intent)
		if err := json.Unmarshal(val, in); err != nil {
			s.damaged("intent", id, err)
			in = &store.Intent{ID: id, Damaged: err.Error()}
		}
		out = append(out, in)
		if cursor != nil {
			next = cursor(sortNS, id)
		} else {
			next = append(binary.AppendUvarint(nil, uint64(len(profile))), profile+id...)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, s.mapErr(err)
	}
	if !more || len(out) == 0 {
		next = nil
	}
	return out, next, nil
}

// Prune implements store.Store. The intent's row and its events' rows are
// locked first, so a redelivery asked for meanwhile either comes before
// (and the prune is refused) or finds nothing.
func (s *Store) Prune(ctx context.Context, id string) error {
	return s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		in, err := getIntent(ctx, tx, s.n, id, true)
		if err != nil {
			return err
		}
		if !in.Status.Final() || !in.Settled {
			return store.ErrStateChanged
		}
		rows, err := tx.Query(ctx, "SELECT state FROM "+s.n.events+" WHERE intent_id = $1 FOR UPDATE", id)
		if err != nil {
			return err
		}
		states, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, st := range states {
			if st == string(store.DeliveryPending) {
				return store.ErrStateChanged
			}
		}
		b := new(pgx.Batch)
		b.Queue("DELETE FROM "+s.n.events+" WHERE intent_id = $1", id)
		b.Queue("DELETE FROM "+s.n.intents+" WHERE id = $1", id)
		return tx.SendBatch(ctx, b).Close()
	})
}
