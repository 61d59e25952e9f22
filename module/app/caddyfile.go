package app

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
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
//			expiry_grace   <duration>
//			retention      <duration>
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	d.Next() // option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		name := d.Val()
		if name == "store" {
			if err := parseStore(d, a); err != nil {
				return nil, err
			}
			continue
		}
		if !d.NextArg() {
			return nil, d.ArgErr()
		}
		val := d.Val()
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		switch name {
		case "storage":
			a.Storage = val
		case "sweep_interval", "expiry_grace", "retention":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return nil, d.Errf("%s %q: %v", name, val, err)
			}
			*map[string]*caddy.Duration{"sweep_interval": &a.SweepInterval, "expiry_grace": &a.ExpiryGrace, "retention": &a.Retention}[name] = caddy.Duration(dur)
		default:
			return nil, d.Errf("unknown direct_upload option %q", name)
		}
	}
	return httpcaddyfile.App{Name: ID, Value: caddyconfig.JSON(a, nil)}, nil
}
