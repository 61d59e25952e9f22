// Package app is the direct_upload Caddy app: one per Caddy process, it owns
// the intent store and the upload service that every direct_upload handler
// of the config shares.
package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

func init() {
	caddy.RegisterModule(new(App))
}

// ID is the app's module ID and the name of its global Caddyfile option.
const ID = "direct_upload"

// stores keeps one open Badger per directory across config reloads: Caddy
// starts the new config before it stops the old one, and Badger allows one
// opener per directory, so both configs must share the handle.
var stores = caddy.NewUsagePool()

// App is the direct_upload app. It holds the intent store, opened when the
// app starts (never during provisioning, so `caddy validate` and reloads do
// not touch the database), and the upload profiles of the loaded config.
type App struct {
	// Storage is the directory of the intent database.
	// Default: "direct_upload" under Caddy's data directory.
	Storage string `json:"storage,omitempty"`

	logger   *zap.Logger
	service  atomic.Pointer[upload.Service]
	mu       sync.Mutex
	profiles map[string]*upload.Profile
	opened   bool
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  ID,
		New: func() caddy.Module { return new(App) },
	}
}

// Provision fills in defaults. It opens nothing.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if a.Storage == "" {
		a.Storage = filepath.Join(caddy.AppDataDir(), "direct_upload")
	}
	abs, err := filepath.Abs(a.Storage)
	if err != nil {
		return fmt.Errorf("resolving storage directory: %w", err)
	}
	a.Storage = abs
	a.profiles = make(map[string]*upload.Profile)
	return nil
}

// RegisterProfile adds an upload profile of this config. Profile names are
// unique within a config: intents remember their profile by name.
func (a *App) RegisterProfile(p *upload.Profile) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.profiles[p.Name]; dup {
		return fmt.Errorf("upload profile %q is defined twice; give each direct_upload block its own profile name", p.Name)
	}
	a.profiles[p.Name] = p
	return nil
}

// Profile returns the registered profile with the name.
func (a *App) Profile(name string) (*upload.Profile, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.profiles[name]
	return p, ok
}

// ErrNotStarted is returned by Service before the app has started.
var ErrNotStarted = errors.New("direct_upload app has not started")

// Service returns the upload service, available once the app has started.
func (a *App) Service() (*upload.Service, error) {
	if s := a.service.Load(); s != nil {
		return s, nil
	}
	return nil, ErrNotStarted
}

type storeHandle struct{ *store.Badger }

func (h storeHandle) Destruct() error { return h.Close() }

// Start opens (or shares) the store.
func (a *App) Start() error {
	if err := os.MkdirAll(a.Storage, 0o700); err != nil {
		return fmt.Errorf("creating storage directory: %w", err)
	}
	val, _, err := stores.LoadOrNew(a.Storage, func() (caddy.Destructor, error) {
		db, err := store.OpenBadger(a.Storage, a.logger.Named("badger"))
		if err != nil {
			return nil, err
		}
		return storeHandle{db}, nil
	})
	if err != nil {
		return fmt.Errorf("opening intent store: %w", err)
	}
	a.opened = true
	a.service.Store(upload.NewService(val.(storeHandle).Badger, a.logger))
	a.logger.Info("intent store open", zap.String("storage", a.Storage))
	return nil
}

// Stop releases this config's hold on the store; the last holder closes it.
func (a *App) Stop() error {
	// The service stays reachable: requests of the old config may still be
	// draining, and the store stays open while a newer config holds it.
	if !a.opened {
		return nil
	}
	a.opened = false
	_, err := stores.Delete(a.Storage)
	return err
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)
