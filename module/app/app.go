// Package app is the direct_upload Caddy app: one per Caddy config, it owns
// the intent store, the webhook dispatcher and the upload profiles that
// every direct_upload handler of the config shares.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

func init() {
	caddy.RegisterModule(new(App))
}

// ID is the app's module ID and the name of its global Caddyfile option.
const ID = "direct_upload"

// DrainTimeout bounds how long shutdown waits for webhook attempts in flight.
const DrainTimeout = 10 * time.Second

// cores keeps one open store and one dispatcher per storage directory
// across config reloads: Caddy starts the new config before it stops the
// old one, and Badger allows one opener per directory, so both configs
// share them, and the dispatcher never runs twice.
var cores = caddy.NewUsagePool()

// running are the started apps that have not stopped, for the admin API:
// Caddy starts a new config's apps before it stops the old config's, and
// a load that fails after this app started stops it again while the old
// config goes on serving. Each app removes only itself, so the admin API
// always finds the newest config still running.
var running startedApps

type startedApps struct {
	mu   sync.Mutex
	apps []*App // in the order they started
}

func (s *startedApps) push(a *App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps = append(s.apps, a)
}

func (s *startedApps) remove(a *App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps = slices.DeleteFunc(s.apps, func(x *App) bool { return x == a })
}

// Load returns the most recently started app still running, or nil.
func (s *startedApps) Load() *App {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.apps) == 0 {
		return nil
	}
	return s.apps[len(s.apps)-1]
}

// App is the direct_upload app. It holds the intent store, opened when the
// app starts (never during provisioning, so `caddy validate` and reloads do
// not touch the database), and the upload profiles of the loaded config.
type App struct {
	// Storage is the directory of the intent database: the shorthand of
	// the Badger store, used when Store is not set.
	// Default: "direct_upload" under Caddy's data directory.
	Storage string `json:"storage,omitempty"`
	// StoreRaw is the intent store, a direct_upload.stores module named by
	// its "backend" key ("badger", "postgres"). Default: Badger in Storage.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=direct_upload.stores inline_key=backend"`
	// SweepInterval is how often expired intents are settled, finalized
	// ones re-checked and old ones pruned. Default: 1m.
	SweepInterval caddy.Duration `json:"sweep_interval,omitempty"`
	// ExpiryGrace is how long after a policy's expiry an upload may still
	// be arriving (S3 checks the expiry when a POST starts): the sweeper
	// waits this long before deciding. Default: 1m.
	ExpiryGrace caddy.Duration `json:"expiry_grace,omitempty"`
	// Retention is how long settled intents (and their delivered events)
	// are kept before they are pruned. Default: 168h (7 days).
	Retention caddy.Duration `json:"retention,omitempty"`
	// ClaimLease is how long this instance's claim on a due webhook event
	// lasts: with several instances on one store, the time after which the
	// events a crashed instance had claimed are sent by another. At least
	// the longest webhook timeout + 20s is used. Set when the store opens
	// (a reload to the same store keeps the first value). Default: 1m.
	ClaimLease caddy.Duration `json:"claim_lease,omitempty"`

	logger   *zap.Logger
	service  atomic.Pointer[upload.Service]
	core     *core
	opener   StoreOpener
	storeKey string
	mu       sync.Mutex
	profiles map[string]*upload.Profile
	webhooks map[string]*webhook.Endpoint
	stopped  bool
	health   *health // start-up checks (health.go)
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
	if err := a.provisionStore(ctx); err != nil {
		return err
	}
	if a.SweepInterval == 0 {
		a.SweepInterval = caddy.Duration(DefaultSweepInterval)
	}
	if a.ExpiryGrace == 0 {
		a.ExpiryGrace = caddy.Duration(DefaultExpiryGrace)
	}
	if a.Retention == 0 {
		a.Retention = caddy.Duration(DefaultRetention)
	}
	if a.SweepInterval < caddy.Duration(10*time.Millisecond) || a.ExpiryGrace < 0 || a.Retention < 0 {
		return errors.New("direct_upload: sweep_interval must be at least 10ms; expiry_grace and retention must not be negative")
	}
	if a.ClaimLease != 0 && a.ClaimLease < caddy.Duration(time.Second) {
		return errors.New("direct_upload: claim_lease must be at least 1s")
	}
	a.profiles = make(map[string]*upload.Profile)
	a.webhooks = make(map[string]*webhook.Endpoint)
	return metrics.Register(ctx.GetMetricsRegistry(), collectors()...)
}

// Defaults of the app's settings.
const (
	DefaultSweepInterval = time.Minute
	DefaultExpiryGrace   = time.Minute
	DefaultRetention     = 7 * 24 * time.Hour
)

// RegisterProfile adds an upload profile of this config, with its webhook
// endpoint (nil for none). Profile names are unique within a config:
// intents remember their profile by name.
func (a *App) RegisterProfile(p *upload.Profile, ep *webhook.Endpoint) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.profiles[p.Name]; dup {
		return fmt.Errorf("upload profile %q is defined twice; give each direct_upload block its own profile name", p.Name)
	}
	a.profiles[p.Name] = p
	if ep != nil {
		a.webhooks[p.Name] = ep
	}
	return nil
}

// Profile returns the registered profile with the name.
func (a *App) Profile(name string) (*upload.Profile, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.profiles[name]
	return p, ok
}

func (a *App) endpoint(profile string) (*webhook.Endpoint, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ep, ok := a.webhooks[profile]
	return ep, ok
}

// claimLease is the dispatcher's claim lease: ClaimLease (or the
// default), and at least the longest webhook timeout of the config plus
// twice the margin kept to record an attempt.
func (a *App) claimLease() time.Duration {
	lease := time.Duration(a.ClaimLease)
	if lease == 0 {
		lease = webhook.DefaultLease
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ep := range a.webhooks {
		if ep != nil {
			lease = max(lease, ep.Timeout+2*webhook.LeaseMargin)
		}
	}
	return lease
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

// Dispatcher returns the webhook dispatcher, once the app has started.
func (a *App) Dispatcher() (*webhook.Dispatcher, error) {
	if a.service.Load() == nil {
		return nil, ErrNotStarted
	}
	return a.core.disp, nil
}

// Store returns the intent store, once the app has started.
func (a *App) Store() (store.Store, error) {
	if a.service.Load() == nil {
		return nil, ErrNotStarted
	}
	return a.core.db, nil
}

// core is what one storage directory has once per process: the store and
// the dispatcher, and the configs using them (the newest one's webhook
// endpoints are in force).
type core struct {
	owner string        // this instance, as owner of claims and leases
	locks *upload.Locks // shared by every config's service
	db    store.Store
	disp  *webhook.Dispatcher
	sweep *sweeper
	mu    sync.Mutex
	apps  []*App
}

func (c *core) attach(a *App) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apps = append(c.apps, a)
}

func (c *core) detach(a *App) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.apps {
		if x == a {
			c.apps = append(c.apps[:i], c.apps[i+1:]...)
			return
		}
	}
}

// current is the newest config's app using the core, or nil.
func (c *core) current() *App {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.apps) == 0 {
		return nil
	}
	return c.apps[len(c.apps)-1]
}

// endpoint looks a profile's webhook up in the newest config; see
// webhook.Dispatcher.Endpoints.
func (c *core) endpoint(profile string) (*webhook.Endpoint, webhook.Lookup) {
	cur := c.current()
	if cur == nil {
		return nil, webhook.NoConfig
	}
	if _, ok := cur.Profile(profile); !ok {
		return nil, webhook.Unknown
	}
	ep, _ := cur.endpoint(profile)
	return ep, webhook.Ready
}

// setLogger makes the store, dispatcher and sweeper log to the logger of
// the config now in force (they outlive the config that opened them).
func (c *core) setLogger(l *zap.Logger) {
	if l == nil {
		return
	}
	var db any = c.db // any store that can change its logger
	if s, ok := db.(interface{ SetLogger(*zap.Logger) }); ok {
		s.SetLogger(l.Named("badger"))
	}
	c.disp.SetLogger(l.Named("webhook"))
	c.sweep.setLogger(l.Named("sweeper"))
}

// Destruct stops the dispatcher (draining attempts in flight) and closes
// the store, when the last config using them stops.
func (c *core) Destruct() error {
	c.sweep.stop()
	c.disp.Stop(DrainTimeout)
	return c.db.Close()
}

// Start opens (or shares) the store and the dispatcher.
func (a *App) Start() error {
	key, err := a.opener.StoreIdentity()
	if err != nil {
		return fmt.Errorf("opening intent store: %w", err)
	}
	a.storeKey = key
	val, _, err := cores.LoadOrNew(key, func() (caddy.Destructor, error) {
		ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
		defer cancel()
		db, err := a.opener.OpenStore(ctx, a.logger)
		if errors.Is(err, store.ErrUnavailable) {
			// The database is down or unreachable: start anyway, answer
			// 503 store_unavailable, and open it when it returns.
			db = newLazyStore(func(ctx context.Context) (store.Store, error) { return a.opener.OpenStore(ctx, a.logger) }, err, a.logger)
		} else if err != nil {
			return nil, err
		}
		c := &core{db: db, locks: new(upload.Locks), owner: store.NewInstanceID()}
		c.disp = &webhook.Dispatcher{Store: db, Endpoints: c.endpoint, Logger: a.logger.Named("webhook"), Owner: c.owner,
			Lease: a.claimLease()}
		c.disp.Start()
		c.sweep = newSweeper(c, a.logger.Named("sweeper"))
		a.logger.Info("intent store open", zap.String("store", key), zap.String("instance", c.owner))
		return c, nil
	})
	if err != nil {
		return fmt.Errorf("opening intent store: %w", err)
	}
	c := val.(*core)
	a.core = c
	c.setLogger(a.logger)
	svc := upload.NewService(c.db, a.logger)
	svc.Grace = time.Duration(a.ExpiryGrace)
	svc.Locks = c.locks
	svc.OnEvent = func(string) { c.disp.Kick() }
	a.service.Store(svc)
	c.attach(a)
	running.push(a)
	c.sweep.kick()
	a.startChecks()
	return nil
}

// Stop releases this config's hold on the store; the last holder closes it.
func (a *App) Stop() error {
	// The service stays reachable: requests of the old config may still be
	// draining, and the store stays open while a newer config holds it.
	a.stopChecks()
	if a.core == nil || a.stopped {
		return nil
	}
	a.stopped = true
	a.core.detach(a)
	if cur := a.core.current(); cur != nil {
		a.core.setLogger(cur.logger)
	}
	running.remove(a)
	_, err := cores.Delete(a.storeKey)
	return err
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)
