package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// migration is one versioned change of the schema. Versions only grow; a
// released migration is never edited, a new one is added.
type migration struct {
	version int
	name    string
	sql     string // {intents}, {events}, {leases} name the tables, {schema} the schema
}

// migrations is the schema's history, oldest first.
//
// Times that order a listing are kept as Unix nanoseconds (bigint), as the
// Badger store's keys keep them: timestamptz has microseconds only, and
// listings and cursors must order exactly as the records' own times do.
// Ids and profiles compare bytewise (COLLATE "C"), as Badger's keys do.
// The records themselves are the JSON the Badger store keeps, in json
// columns (json, not jsonb: metadata keeps its exact bytes).
var migrations = []migration{
	{1, "intents and outbox", `
CREATE TABLE {intents} (
	id         text COLLATE "C" PRIMARY KEY,
	profile    text COLLATE "C" NOT NULL,
	status     text NOT NULL,
	settled    boolean NOT NULL,
	expires_ns bigint NOT NULL,
	updated_ns bigint NOT NULL,
	intent     json NOT NULL
);
CREATE INDEX "{prefix}intents_expiry" ON {intents} (expires_ns, id) WHERE status = 'pending';
CREATE INDEX "{prefix}intents_recheck" ON {intents} (expires_ns, id) WHERE status <> 'pending' AND NOT settled;
CREATE INDEX "{prefix}intents_finished" ON {intents} (updated_ns, id) WHERE status <> 'pending' AND settled;
CREATE INDEX "{prefix}intents_status" ON {intents} (status, profile, id);
CREATE TABLE {events} (
	id         text COLLATE "C" PRIMARY KEY,
	intent_id  text COLLATE "C" NOT NULL,
	profile    text COLLATE "C" NOT NULL,
	type       text NOT NULL,
	created_ns bigint NOT NULL,
	state      text NOT NULL,
	due_ns     bigint,
	event      json NOT NULL
);
CREATE INDEX "{prefix}events_due" ON {events} (due_ns, id) WHERE state = 'pending';
CREATE INDEX "{prefix}events_intent" ON {events} (intent_id);
`},
	// Due events are read per profile (a skip scan over profiles, then
	// each profile's earliest), and the outbox's statistics from the
	// pending events by creation time: the index by due time alone serves
	// neither any more.
	{2, "due events by profile", `
CREATE INDEX "{prefix}events_profile_due" ON {events} (profile, due_ns, id) WHERE state = 'pending';
CREATE INDEX "{prefix}events_created" ON {events} (created_ns) WHERE state = 'pending';
DROP INDEX {schema}."{prefix}events_due";
`},
	// Fleet mode: a due event is claimed by one instance at a time until
	// claim_until_ns; named leases (the sweeper's) are held by one owner
	// until until_ns.
	{3, "claims and leases", `
ALTER TABLE {events} ADD COLUMN claimed_by text, ADD COLUMN claim_until_ns bigint;
CREATE TABLE {leases} (
	name     text COLLATE "C" PRIMARY KEY,
	owner    text NOT NULL,
	until_ns bigint NOT NULL
);
`},
	{4, "quotas and rate limits", quotaMigration},
}

// SchemaVersion is the version of the newest migration this build knows.
var SchemaVersion = migrations[len(migrations)-1].version

// names are the schema-qualified, quoted names of the store's tables.
type names struct {
	schema, intents, events, leases, migrations string
	quota, verified, rates                      string // see quota.go
	prefix                                      string // unquoted, for index names
	lockKey                                     int64
}

func newNames(schema, prefix string) names {
	q := func(t string) string { return pgx.Identifier{schema, prefix + t}.Sanitize() }
	h := fnv.New64a()
	h.Write([]byte("direct_upload/" + schema + "/" + prefix))
	return names{
		schema:     pgx.Identifier{schema}.Sanitize(),
		intents:    q("intents"),
		events:     q("events"),
		leases:     q("leases"),
		migrations: q("schema_migrations"),
		quota:      q("quota"),
		verified:   q("quota_verified"),
		rates:      q("rate_buckets"),
		prefix:     prefix,
		lockKey:    int64(h.Sum64()),
	}
}

func (n names) expand(sql string) string {
	return strings.NewReplacer("{intents}", n.intents, "{events}", n.events, "{leases}", n.leases,
		"{schema}", n.schema, "{prefix}", n.prefix,
		"{quota}", n.quota, "{verified}", n.verified, "{rates}", n.rates).Replace(sql)
}

// migrate brings the schema up to date. It holds a session advisory lock
// (one per schema and prefix) meanwhile, so that instances starting
// together apply each migration once: the others wait, then find nothing
// left to do. Each migration commits with its row in schema_migrations.
func migrate(ctx context.Context, conn *pgx.Conn, n names) (applied []int, err error) {
	// Waiting for another instance's migrations is bounded by ctx only.
	if _, err := conn.Exec(ctx, "SET statement_timeout = 0"); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", n.lockKey); err != nil {
		return nil, fmt.Errorf("taking the migration lock: %w", err)
	}
	defer func() {
		_, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", n.lockKey)
		if err == nil && uerr != nil {
			err = uerr
		}
	}()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+n.schema); err != nil {
		return nil, fmt.Errorf("creating schema: %w", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+n.migrations+` (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("creating the migrations table: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+n.migrations).Scan(&current); err != nil {
		return nil, err
	}
	if last := migrations[len(migrations)-1].version; current > last {
		return nil, fmt.Errorf("the database's schema is at version %d, newer than this build knows (%d): run a newer build", current, last)
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, n.expand(m.sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+n.migrations+" (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		applied = append(applied, m.version)
	}
	return applied, nil
}
