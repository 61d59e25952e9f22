package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store/postgres"
)

func init() {
	caddy.RegisterModule(new(BadgerStore))
	caddy.RegisterModule(new(PostgresStore))
}

// StoresNamespace is the module namespace of intent stores: the app's
// "store" field names one of them by its "backend" key.
const StoresNamespace = "direct_upload.stores"

// StoreOpener is what a direct_upload.stores module does. Provisioning it
// touches no database; the app opens the store in Start.
type StoreOpener interface {
	// StoreIdentity names the records the store keeps (a directory, a
	// database's tables). Configs whose stores have the same identity share
	// one open store across reloads. It holds no secret.
	StoreIdentity() (string, error)
	// OpenStore opens the store. The app closes it when the last config
	// using it stops.
	OpenStore(ctx context.Context, logger *zap.Logger) (store.Store, error)
}

// storeOpenTimeout bounds opening a store at start (connecting, migrating).
const storeOpenTimeout = time.Minute

// provisionStore loads the configured store module, or the default: Badger
// in Storage (itself defaulting to Caddy's data directory).
func (a *App) provisionStore(ctx caddy.Context) error {
	if a.StoreRaw != nil {
		if a.Storage != "" {
			return errors.New("direct_upload: storage is the Badger store's directory; set it in the store module instead, not beside it")
		}
		mod, err := ctx.LoadModule(a, "StoreRaw")
		if err != nil {
			return fmt.Errorf("loading intent store module: %w", err)
		}
		a.opener = mod.(StoreOpener)
		return nil
	}
	b := &BadgerStore{Path: a.Storage}
	if err := b.Provision(ctx); err != nil {
		return err
	}
	a.Storage = b.Path
	a.opener = b
	return nil
}

// BadgerStore keeps intents in an embedded Badger database on local disk:
// the default, for one Caddy instance (a second process cannot open the
// same directory).
type BadgerStore struct {
	// Path is the database's directory.
	// Default: "direct_upload" under Caddy's data directory.
	Path string `json:"path,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*BadgerStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: StoresNamespace + ".badger", New: func() caddy.Module { return new(BadgerStore) }}
}

// Provision resolves the directory. It creates nothing.
func (b *BadgerStore) Provision(caddy.Context) error {
	if b.Path == "" {
		b.Path = filepath.Join(caddy.AppDataDir(), "direct_upload")
	}
	abs, err := filepath.Abs(b.Path)
	if err != nil {
		return fmt.Errorf("resolving storage directory: %w", err)
	}
	b.Path = abs
	return nil
}

// StoreIdentity implements StoreOpener.
func (b *BadgerStore) StoreIdentity() (string, error) { return "badger:" + b.Path, nil }

// OpenStore implements StoreOpener.
func (b *BadgerStore) OpenStore(_ context.Context, logger *zap.Logger) (store.Store, error) {
	if err := os.MkdirAll(b.Path, 0o700); err != nil {
		return nil, fmt.Errorf("creating storage directory: %w", err)
	}
	return store.OpenBadger(b.Path, logger.Named("badger"))
}

// UnmarshalCaddyfile sets up the store from
//
//	store badger [<dir>]
//
// or with a block:
//
//	store badger {
//		path <dir>
//	}
func (b *BadgerStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // backend name
	if d.NextArg() {
		b.Path = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		if d.Val() != "path" {
			return d.Errf("unknown badger store option %q", d.Val())
		}
		if !d.AllArgs(&b.Path) {
			return d.ArgErr()
		}
	}
	return nil
}

// PostgresStore keeps intents and the outbox in PostgreSQL, which several
// Caddy instances can share. The schema is created and migrated when the
// store opens.
type PostgresStore struct {
	// DSN is the connection string (URL or key=value), usually from the
	// environment: {env.DATABASE_URL}. Placeholders are expanded when the
	// store opens. Required.
	DSN string `json:"dsn,omitempty"`
	// MaxConns bounds the instance's connection pool. Default: 10.
	MaxConns int `json:"max_conns,omitempty"`
	// Schema holds the store's tables; created if missing. Default: public.
	Schema string `json:"schema,omitempty"`
	// TablePrefix starts each table's name. Default: direct_upload_.
	TablePrefix string `json:"table_prefix,omitempty"`
	// StatementTimeout bounds every statement. Default: 5s.
	StatementTimeout caddy.Duration `json:"statement_timeout,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*PostgresStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: StoresNamespace + ".postgres", New: func() caddy.Module { return new(PostgresStore) }}
}

// Validate checks the settings without expanding the DSN's placeholders
// or touching the database.
func (p *PostgresStore) Validate() error {
	switch {
	case p.DSN == "":
		return errors.New("postgres store: dsn is required")
	case p.MaxConns < 0:
		return errors.New("postgres store: max_conns must not be negative")
	case p.StatementTimeout < 0:
		return errors.New("postgres store: statement_timeout must not be negative")
	}
	return nil
}

// config expands the DSN's placeholders ({env.DATABASE_URL}); an empty
// expansion is an error, so a missing variable is named at start.
func (p *PostgresStore) config() (postgres.Config, error) {
	dsn, err := caddy.NewReplacer().ReplaceOrErr(p.DSN, true, true)
	if err != nil {
		return postgres.Config{}, fmt.Errorf("postgres store dsn: %w", err)
	}
	return postgres.Config{DSN: dsn, MaxConns: int32(p.MaxConns), Schema: p.Schema, TablePrefix: p.TablePrefix,
		StatementTimeout: time.Duration(p.StatementTimeout)}, nil
}

// StoreIdentity implements StoreOpener.
func (p *PostgresStore) StoreIdentity() (string, error) {
	cfg, err := p.config()
	if err != nil {
		return "", err
	}
	return cfg.Identity()
}

// OpenStore implements StoreOpener.
func (p *PostgresStore) OpenStore(ctx context.Context, logger *zap.Logger) (store.Store, error) {
	cfg, err := p.config()
	if err != nil {
		return nil, err
	}
	cfg.Logger = logger.Named("postgres")
	return postgres.Open(ctx, cfg)
}

// UnmarshalCaddyfile sets up the store from
//
//	store postgres {
//		dsn               <dsn>
//		max_conns         <n>
//		schema            <name>
//		table_prefix      <prefix>
//		statement_timeout <duration>
//	}
func (p *PostgresStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // backend name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		name := d.Val()
		var val string
		if !d.AllArgs(&val) {
			return d.ArgErr()
		}
		switch name {
		case "dsn":
			p.DSN = val
		case "schema":
			p.Schema = val
		case "table_prefix":
			p.TablePrefix = val
		case "max_conns":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return d.Errf("max_conns %q: want a positive number", val)
			}
			p.MaxConns = n
		case "statement_timeout":
			dur, err := caddy.ParseDuration(val)
			if err != nil || dur <= 0 {
				return d.Errf("statement_timeout %q: want a positive duration", val)
			}
			p.StatementTimeout = caddy.Duration(dur)
		default:
			return d.Errf("unknown postgres store option %q", name)
		}
	}
	return nil
}

// Interface guards.
var (
	_ StoreOpener           = (*BadgerStore)(nil)
	_ StoreOpener           = (*PostgresStore)(nil)
	_ caddy.Provisioner     = (*BadgerStore)(nil)
	_ caddy.Validator       = (*PostgresStore)(nil)
	_ caddyfile.Unmarshaler = (*BadgerStore)(nil)
	_ caddyfile.Unmarshaler = (*PostgresStore)(nil)
)
