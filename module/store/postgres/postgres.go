// Package postgres is the intent store kept in PostgreSQL, which several
// Caddy instances share. It keeps the store.Store contract exactly as the
// Badger store does: the same records, orders, cursors and errors.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// Defaults of Config.
const (
	DefaultMaxConns         = 10
	DefaultSchema           = "public"
	DefaultTablePrefix      = "direct_upload_"
	DefaultStatementTimeout = 5 * time.Second
)

// Config says where the store lives and how it talks to the database.
type Config struct {
	// DSN is the database's connection string (URL or key=value form).
	DSN string
	// MaxConns bounds the connection pool. Default: 10.
	MaxConns int32
	// Schema holds the store's tables; created if missing. Default: public.
	Schema string
	// TablePrefix starts the name of each of the store's tables, so that
	// several stores can share a schema. Default: direct_upload_.
	TablePrefix string
	// StatementTimeout bounds every statement (the connections'
	// statement_timeout) and, a little more loosely, every call. Default: 5s.
	StatementTimeout time.Duration
	// Logger receives the store's own messages (migrations applied).
	Logger *zap.Logger
}

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

func (c *Config) setDefaults() error {
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.TablePrefix == "" {
		c.TablePrefix = DefaultTablePrefix
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = DefaultStatementTimeout
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	switch {
	case c.DSN == "":
		return errors.New("postgres store: dsn is required")
	case c.MaxConns < 1:
		return errors.New("postgres store: max_conns must be at least 1")
	case !identifier.MatchString(c.Schema):
		return fmt.Errorf("postgres store: schema %q must be lowercase letters, digits and _", c.Schema)
	case c.TablePrefix != "_" && !identifier.MatchString(c.TablePrefix):
		return fmt.Errorf("postgres store: table prefix %q must be lowercase letters, digits and _", c.TablePrefix)
	case c.StatementTimeout < time.Millisecond:
		return errors.New("postgres store: statement_timeout must be at least 1ms")
	}
	return nil
}

// Store is the store.Store kept in PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	n       names
	timeout time.Duration
	closed  atomic.Bool

	creates chan createReq
	quit    chan struct{} // closed by Close: committers stop
	stopped chan struct{} // closed once every committer has returned

	log atomic.Pointer[zap.Logger]
	// damagedSeen holds the kind/id of damaged records already reported.
	damagedSeen sync.Map
}

// SetLogger makes the store log to l from now on: a reloaded config's
// logger replaces the first one's.
func (s *Store) SetLogger(l *zap.Logger) {
	if l != nil {
		s.log.Store(l)
	}
}

func (s *Store) logger() *zap.Logger { return s.log.Load() }

// damagedError is the error of a row whose JSON cannot be decoded.
type damagedError struct {
	kind, id string
	err      error
}

func (e *damagedError) Error() string {
	return fmt.Sprintf("damaged %s %s: %v", e.kind, e.id, e.err)
}
func (e *damagedError) Is(target error) bool { return target == store.ErrDamaged }
func (e *damagedError) Unwrap() error        { return e.err }

// damaged reports an unreadable record once per kind and id: logged and
// counted, as the Badger store does.
func (s *Store) damaged(kind, id string, err error) {
	if _, seen := s.damagedSeen.LoadOrStore(kind+"/"+id, true); seen {
		return
	}
	metrics.DamagedRecords.WithLabelValues(kind).Inc()
	s.logger().Error("damaged record skipped; everything else goes on",
		zap.String("kind", kind), zap.String("id", id), zap.Error(err))
}

// noteDamaged reports err if it is a damaged record's, and returns it.
func (s *Store) noteDamaged(err error) error {
	var de *damagedError
	if errors.As(err, &de) {
		s.damaged(de.kind, de.id, de.err)
	}
	return err
}

// Open connects to the database and brings its schema up to date (see
// migrate). It fails if the database cannot be reached.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// The parser's message quotes the DSN, password included.
		return nil, errors.New("postgres store: the dsn cannot be parsed")
	}
	pc.MaxConns = cfg.MaxConns
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = cfg.StatementTimeout
	}
	rp := pc.ConnConfig.RuntimeParams
	rp["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	// A client that died inside a transaction releases its row locks soon.
	rp["idle_in_transaction_session_timeout"] = strconv.FormatInt(4*cfg.StatementTimeout.Milliseconds(), 10)
	if rp["application_name"] == "" {
		rp["application_name"] = "caddy-direct-upload"
	}
	n := newNames(cfg.Schema, cfg.TablePrefix)

	conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("connecting to postgres: %w", mapErr(err))
	}
	applied, err := migrate(ctx, conn, n)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("migrating the postgres store: %w", mapErr(err))
	}
	if len(applied) > 0 {
		cfg.Logger.Info("schema migrated", zap.Ints("applied", applied), zap.String("schema", cfg.Schema), zap.String("table_prefix", cfg.TablePrefix))
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("opening the postgres pool: %w", mapErr(err))
	}
	s := &Store{
		pool: pool, n: n, timeout: cfg.StatementTimeout,
		creates: make(chan createReq, maxCreateBatch),
		quit:    make(chan struct{}), stopped: make(chan struct{}),
	}
	s.log.Store(cfg.Logger)
	var wg sync.WaitGroup
	for range committers(cfg.MaxConns) {
		wg.Go(s.committer)
	}
	go func() { wg.Wait(); close(s.stopped) }()
	return s, nil
}

// Close stops taking calls, waits for group commits in progress, and
// closes the pool.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.quit)
	<-s.stopped
	s.pool.Close()
	return nil
}

// op bounds one call: its statements each have the statement timeout, and
// the call as a whole (a transaction of a few statements, the wait for a
// connection) a few times that.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if s.closed.Load() {
		return nil, nil, store.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, 3*s.timeout)
	return ctx, cancel, nil
}

// inTx runs fn in a read-committed transaction, committing if it returns
// nil. Rows fn reads with FOR UPDATE stay locked until the end, so
// decisions about one intent are serialized by the database.
func (s *Store) inTx(ctx context.Context, fn func(context.Context, pgx.Tx) error) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return s.mapErr(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(ctx, tx) }))
}

// mapErr is mapErr, except that a call Close overtook fails with
// ErrClosed (the closed pool's own error says less).
func (s *Store) mapErr(err error) error {
	if err != nil && s.closed.Load() {
		return store.ErrClosed
	}
	if brokenConn(err) {
		// The server went away (a restart or failover): every idle
		// connection of the pool is as dead as this one, and would fail
		// the next calls one by one; new ones are made on demand.
		s.pool.Reset()
	}
	return s.noteDamaged(mapErr(err))
}

// brokenConn reports whether err says the connection itself is gone, as
// opposed to a statement that failed or timed out on a live one.
func brokenConn(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	var connErr *pgconn.ConnectError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.As(err, &connErr)
}

// mapErr turns the driver's errors into the contract's: a missing row is
// ErrNotFound, a lost serialization race ErrConflict, and anything that
// says the database could not be reached or did not answer in time
// ErrUnavailable (wrapping the cause). Other errors, a transition's own
// included, pass unchanged.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	for _, sentinel := range []error{store.ErrNotFound, store.ErrExists, store.ErrStateChanged, store.ErrConflict, store.ErrClosed, store.ErrUnavailable, store.ErrDamaged} {
		if errors.Is(err, sentinel) {
			return err
		}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "40001", pgErr.Code == "40P01": // serialization failure, deadlock
			return fmt.Errorf("%w: %s", store.ErrConflict, pgErr.Message)
		case pgErr.Code == "57014", // statement timeout
			pgErr.Code == "25P03",                // idle in transaction timeout
			pgErr.Code == "53300",                // too many connections
			strings.HasPrefix(pgErr.Code, "08"),  // connection exception
			strings.HasPrefix(pgErr.Code, "57P"): // shutdown, crash, cannot connect now
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return err
	}
	var netErr net.Error
	var connErr *pgconn.ConnectError
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) || errors.As(err, &connErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, pgx.ErrTxClosed) || errors.Is(err, pgx.ErrTxCommitRollback) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

func ns(t time.Time) int64 { return t.UnixNano() }

var _ store.Store = (*Store)(nil)

// Identity names the tables the configuration points at (server, database,
// user, schema, table prefix), without the password: two configurations
// with the same identity are the same store.
func (c Config) Identity() (string, error) {
	if err := c.setDefaults(); err != nil {
		return "", err
	}
	pc, err := pgconn.ParseConfig(c.DSN)
	if err != nil {
		return "", errors.New("postgres store: the dsn cannot be parsed")
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?schema=%s&table_prefix=%s", pc.User, pc.Host, pc.Port, pc.Database, c.Schema, c.TablePrefix), nil
}
