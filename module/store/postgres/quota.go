package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// quotaMigration adds the quota counters (one row per profile and
// subject, locked by the transactions that change them), the verified
// bytes per window bucket, and the grant rate limit's token buckets,
// shared by every instance of a fleet.
const quotaMigration = `
CREATE TABLE {quota} (
	profile  text COLLATE "C" NOT NULL,
	subject  text COLLATE "C" NOT NULL,
	pending  bigint NOT NULL,
	reserved bigint NOT NULL,
	PRIMARY KEY (profile, subject)
);
CREATE TABLE {verified} (
	profile text COLLATE "C" NOT NULL,
	subject text COLLATE "C" NOT NULL,
	bucket  bigint NOT NULL,
	bytes   bigint NOT NULL,
	PRIMARY KEY (profile, subject, bucket)
);
CREATE TABLE {rates} (
	key    text COLLATE "C" PRIMARY KEY,
	tokens double precision NOT NULL,
	at_ns  bigint NOT NULL
);
`

type subjectID struct{ profile, subject string }

// createQuoted stores intents with a quota charge: in one transaction, it
// locks the counter rows of their subjects (in sorted order, so that
// concurrent batches never deadlock), checks each intent against its caps
// in batch order, inserts those that fit and writes the new counters. An
// intent over a cap is answered its *store.QuotaError alone.
func (s *Store) createQuoted(batch []createReq) {
	res := make([]error, len(batch))
	err := s.inTx(context.Background(), func(ctx context.Context, tx pgx.Tx) error {
		clear(res)
		now := time.Now()
		var subjects []subjectID
		for _, r := range batch {
			subjects = append(subjects, subjectID{r.in.Profile, r.in.Quota.Subject})
		}
		slices.SortFunc(subjects, func(a, b subjectID) int {
			return strings.Compare(a.profile+"\x00"+a.subject, b.profile+"\x00"+b.subject)
		})
		subjects = slices.Compact(subjects)
		type state struct {
			c       store.Counters
			buckets map[int64]int64
		}
		states := map[subjectID]*state{}
		for _, sid := range subjects {
			st := &state{buckets: map[int64]int64{}}
			states[sid] = st
			if _, err := tx.Exec(ctx, `INSERT INTO `+s.n.quota+` (profile, subject, pending, reserved) VALUES ($1, $2, 0, 0)
				ON CONFLICT DO NOTHING`, sid.profile, sid.subject); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `SELECT pending, reserved FROM `+s.n.quota+` WHERE profile = $1 AND subject = $2 FOR UPDATE`,
				sid.profile, sid.subject).Scan(&st.c.Pending, &st.c.Reserved); err != nil {
				return err
			}
			var window time.Duration
			for _, r := range batch {
				if r.in.Profile == sid.profile && r.in.Quota.Subject == sid.subject {
					window = max(window, r.in.Quota.Limits.VerifiedWindow)
				}
			}
			if window <= 0 {
				continue
			}
			if _, err := tx.Exec(ctx, `DELETE FROM `+s.n.verified+` WHERE profile = $1 AND subject = $2 AND bucket < $3`,
				sid.profile, sid.subject, now.Add(-window).Unix()); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT bucket, bytes FROM `+s.n.verified+` WHERE profile = $1 AND subject = $2`, sid.profile, sid.subject)
			if err != nil {
				return err
			}
			for rows.Next() {
				var b, n int64
				if err := rows.Scan(&b, &n); err != nil {
					rows.Close()
					return err
				}
				st.buckets[b] = n
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		seen := map[string]bool{}
		var ids, profiles, statuses, vals []string
		var expires, updated []int64
		accepted := map[string]int{}
		for i, r := range batch {
			if seen[r.in.ID] {
				res[i] = store.ErrExists
				continue
			}
			seen[r.in.ID] = true
			st := states[subjectID{r.in.Profile, r.in.Quota.Subject}]
			var verified int64
			var oldest time.Time
			if l := r.in.Quota.Limits; l.MaxVerified > 0 {
				since := now.Add(-l.VerifiedWindow).Unix()
				for b, n := range st.buckets {
					if b >= since && n > 0 {
						verified += n
						if t := time.Unix(b, 0); oldest.IsZero() || t.Before(oldest) {
							oldest = t
						}
					}
				}
			}
			if err := store.CheckQuota(r.in.Quota, st.c, verified, oldest, now); err != nil {
				res[i] = err
				continue
			}
			st.c.Pending++
			st.c.Reserved += r.in.Quota.Reserved
			accepted[r.in.ID] = i
			ids = append(ids, r.in.ID)
			profiles = append(profiles, r.in.Profile)
			statuses = append(statuses, string(r.in.Status))
			expires = append(expires, ns(r.in.ExpiresAt))
			updated = append(updated, ns(r.in.UpdatedAt))
			vals = append(vals, r.val)
		}
		if len(ids) > 0 {
			rows, err := tx.Query(ctx, `INSERT INTO `+s.n.intents+` (id, profile, status, settled, expires_ns, updated_ns, intent)
				SELECT id, profile, status, false, e, u, j::json
				FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[]) AS t(id, profile, status, e, u, j)
		ORDER BY id -- one order for every batch: concurrent batches with the same ids wait, never deadlock
				ON CONFLICT (id) DO NOTHING RETURNING id`, ids, profiles, statuses, expires, updated, vals)
			if err != nil {
				return err
			}
			created, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			for _, id := range created {
				delete(accepted, id)
			}
			for _, i := range accepted { // ids already taken: not counted
				res[i] = store.ErrExists
				st := states[subjectID{batch[i].in.Profile, batch[i].in.Quota.Subject}]
				st.c.Pending--
				st.c.Reserved -= batch[i].in.Quota.Reserved
			}
		}
		for sid, st := range states {
			if _, err := tx.Exec(ctx, `UPDATE `+s.n.quota+` SET pending = $3, reserved = $4 WHERE profile = $1 AND subject = $2`,
				sid.profile, sid.subject, st.c.Pending, st.c.Reserved); err != nil {
				return err
			}
		}
		return nil
	})
	for i, r := range batch {
		if err != nil {
			r.res <- err
		} else {
			r.res <- res[i]
		}
	}
}

// splitQuoted separates the creates with a quota charge from the others.
func splitQuoted(batch []createReq) (plain, quoted []createReq) {
	for _, r := range batch {
		if r.in.Quota != nil {
			quoted = append(quoted, r)
		} else {
			plain = append(plain, r)
		}
	}
	return plain, quoted
}

// queueRelease queues, in a transition's batch, the change of counters
// it makes (see store.QuotaRelease).
func queueRelease(b *pgx.Batch, n names, from store.Status, in *store.Intent) {
	ch, ok := store.QuotaRelease(from, in)
	if !ok {
		return
	}
	b.Queue(`UPDATE `+n.quota+` SET pending = greatest(0, pending + $3), reserved = greatest(0, reserved + $4)
		WHERE profile = $1 AND subject = $2`, in.Profile, in.Quota.Subject, ch.Pending, ch.Reserved)
	if ch.Verified > 0 {
		b.Queue(`INSERT INTO `+n.verified+` AS v (profile, subject, bucket, bytes) VALUES ($1, $2, $3, $4)
			ON CONFLICT (profile, subject, bucket) DO UPDATE SET bytes = v.bytes + EXCLUDED.bytes`,
			in.Profile, in.Quota.Subject, ch.Bucket, ch.Verified)
	}
}

// Usage implements store.QuotaStore.
func (s *Store) Usage(ctx context.Context, profile, subject string, since time.Time) (store.Usage, error) {
	u := store.Usage{Profile: profile, Subject: subject, Since: since}
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return u, err
	}
	defer cancel()
	err = s.pool.QueryRow(ctx, `SELECT pending, reserved FROM `+s.n.quota+` WHERE profile = $1 AND subject = $2`,
		profile, subject).Scan(&u.Pending, &u.Reserved)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return u, s.mapErr(err)
	}
	err = s.pool.QueryRow(ctx, `SELECT coalesce(sum(bytes), 0)::bigint FROM `+s.n.verified+` WHERE profile = $1 AND subject = $2 AND bucket >= $3`,
		profile, subject, since.Unix()).Scan(&u.Verified)
	return u, s.mapErr(err)
}

// TakeToken implements store.QuotaStore with a row per key, locked while
// it is read and written: every instance of a fleet takes from the same
// bucket. Times are the callers' clocks; a clock behind another's refills
// nothing (elapsed time is never negative).
func (s *Store) TakeToken(ctx context.Context, key string, n int, per time.Duration, now time.Time) (bool, time.Duration, error) {
	var ok bool
	var wait time.Duration
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.n.rates+` (key, tokens, at_ns) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			key, float64(n), ns(now)); err != nil {
			return err
		}
		var tokens float64
		var at int64
		if err := tx.QueryRow(ctx, `SELECT tokens, at_ns FROM `+s.n.rates+` WHERE key = $1 FOR UPDATE`, key).Scan(&tokens, &at); err != nil {
			return err
		}
		var left float64
		ok, wait, left = store.Refill(tokens, time.Duration(ns(now)-at), n, per)
		_, err := tx.Exec(ctx, `UPDATE `+s.n.rates+` SET tokens = $2, at_ns = greatest(at_ns, $3) WHERE key = $1`, key, left, ns(now))
		return err
	})
	return ok, wait, err
}

var _ store.QuotaStore = (*Store)(nil)
