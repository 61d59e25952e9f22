package app

import (
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/doctor"
)

// parseStore reads "store <backend> ..." into the app's store field; the
// backend's module (direct_upload.stores.<backend>) parses the rest. The
// storage shorthand and a store block exclude each other.
func parseStore(d *caddyfile.Dispenser, a *App) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	backend := d.Val()
	// The module's parser gets the segment from the backend's name on.
	mod, err := caddyfile.UnmarshalModule(d, StoresNamespace+"."+backend)
	if err != nil {
		return err
	}
	a.StoreRaw = caddyconfig.JSONModuleObject(mod, "backend", backend, nil)
	return nil
}

func init() {
	httpcaddyfile.RegisterGlobalOption(ID, parseGlobalOption)
}

// parseGlobalOption sets up the app from the global option block:
//
//	{
//		direct_upload {
//			storage        <dir>
//			store          <backend> [<args>] { ... }
//			sweep_interval <duration>
//			claim_lease    <duration>
//			expiry_grace   <duration>
//			retention      <duration>
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	d.Next() // option name
	if d.NextArg() {
		return nil, d.Errf("the direct_upload option takes no argument on its line (got %q): put the settings in its { } block", d.Val())
	}
	for d.NextBlock(0) {
		name := d.Val()
		if name == "store" {
			if err := parseStore(d, a); err != nil {
				return nil, err
			}
			continue
		}
		if !slices.Contains(globalOptions, name) {
			msg := fmt.Sprintf("unknown direct_upload option %q", name)
			if s := doctor.Closest(name, globalOptions); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return nil, d.Errf("%s; known: %s", msg, strings.Join(globalOptions, ", "))
		}
		args := d.RemainingArgs()
		switch {
		case len(args) == 0:
			return nil, d.Errf("%s needs a value (a {$VARIABLE} that is unset expands to nothing)", name)
		case len(args) > 1:
			return nil, d.Errf("%s takes one value, got %d: %q", name, len(args), strings.Join(args, " "))
		}
		val := args[0]
		switch name {
		case "storage":
			a.Storage = val
		case "sweep_interval", "expiry_grace", "retention", "claim_lease":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return nil, d.Errf("%s %q: want a duration such as 1m, 90s or 168h", name, val)
			}
			*map[string]*caddy.Duration{"sweep_interval": &a.SweepInterval, "expiry_grace": &a.ExpiryGrace, "retention": &a.Retention,
				"claim_lease": &a.ClaimLease}[name] = caddy.Duration(dur)
		}
	}
	return httpcaddyfile.App{Name: ID, Value: caddyconfig.JSON(a, nil)}, nil
}

// globalOptions are the direct_upload global option's settings.
var globalOptions = []string{"storage", "store", "sweep_interval", "expiry_grace", "retention", "claim_lease"}
