// Package command registers the `caddy direct-upload` subcommand:
//
//	caddy direct-upload secret
//	caddy direct-upload check --config Caddyfile [--adapter caddyfile] [--origin https://site]
//
// secret prints a fresh webhook secret; check loads the config as `caddy
// validate` does (without starting anything) and runs the doctor's checks
// on every direct_upload profile in it.
package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/doctor"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/handler"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "direct-upload",
		Usage: "secret [--ed25519] | check --config <file> [--adapter <name>] [--origin <url>]",
		Short: "Makes webhook secrets and checks a direct_upload deployment",
		Long: `
secret prints a fresh Standard Webhooks secret (whsec_ + base64 of 32 random
bytes), to give both the direct_upload webhook and the backend's receiver;
with --ed25519, a key pair instead: the whsk_ signing key for the webhook
block, the whpk_ public key for the receiver (Standard Webhooks v1a).

check loads the config like 'caddy validate' (nothing is started) and, for each
direct_upload profile, checks: where its credentials come from; the bucket's
addressing; that the bucket exists and is reachable with them; that the store
accepts a real presigned POST (a few bytes, read back and deleted); that the
bucket's CORS lets the site's origin POST and exposes ETag; that the webhook
receiver accepts a signed direct_upload.test event. One line per check (ok,
warn, FAIL with what to fix); the exit status is 1 when any check fails.`,
		CobraFunc: func(cmd *cobra.Command) {
			secret := &cobra.Command{
				Use:   "secret [--ed25519]",
				Short: "Prints a fresh whsec_ webhook secret, or an Ed25519 key pair",
				Args:  cobra.NoArgs,
				RunE: func(cmd *cobra.Command, _ []string) error {
					ed, _ := cmd.Flags().GetBool("ed25519")
					out, err := secretText(ed)
					if err != nil {
						return err
					}
					_, err = fmt.Fprint(cmd.OutOrStdout(), out)
					return err
				},
			}
			secret.Flags().Bool("ed25519", false, "Print an Ed25519 key pair (whsk_ for the webhook block, whpk_ for the receiver) instead")
			check := &cobra.Command{
				Use:   "check --config <file> [--adapter <name>] [--origin <url>]",
				Short: "Checks every direct_upload profile of a config against its bucket and webhook",
				Args:  cobra.NoArgs,
				RunE:  caddycmd.WrapCommandFuncForCobra(cmdCheck),
			}
			check.Flags().StringP("config", "c", "", "Configuration file (default: ./Caddyfile)")
			check.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
			check.Flags().String("origin", "", "The site's origin browsers upload from (default: from the site address)")
			cmd.AddCommand(secret, check)
		},
	})
}

func cmdCheck(fl caddycmd.Flags) (int, error) {
	cfgFile, adapter := fl.String("config"), fl.String("adapter")
	if cfgFile == "" {
		if _, err := os.Stat("Caddyfile"); err != nil {
			return caddy.ExitCodeFailedStartup, errors.New("give the config with --config (there is no Caddyfile in this directory)")
		}
		cfgFile, adapter = "Caddyfile", "caddyfile"
	}
	input, _, _, err := caddycmd.LoadConfig(cfgFile, adapter)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	failed, err := Check(context.Background(), os.Stdout, input, fl.String("origin"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if failed > 0 {
		return 1, fmt.Errorf("%d check(s) failed; fix them and run check again", failed)
	}
	return 0, nil
}

// Check runs every check on each direct_upload profile of a JSON config
// and prints one line per check to w. It returns how many failed.
func Check(ctx context.Context, w io.Writer, cfgJSON []byte, origin string) (int, error) {
	targets, err := Targets(cfgJSON, origin)
	if err != nil {
		return 0, err
	}
	if len(targets) == 0 {
		return 0, errors.New("the config has no direct_upload handler")
	}
	failed := 0
	for _, t := range targets {
		for _, r := range doctor.Run(ctx, t) {
			fmt.Fprintln(w, r.String())
			if r.Status == doctor.Fail {
				failed++
			}
		}
	}
	return failed, nil
}

// Targets finds every direct_upload handler of a JSON config (at any depth
// of routes and subroutes) and what the doctor checks of it. origin, when
// given, is every profile's origin; otherwise one is derived from the
// site's address.
func Targets(cfgJSON []byte, origin string) ([]doctor.Target, error) {
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string          `json:"listen"`
					Routes []json.RawMessage `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	var out []doctor.Target
	var walkErr error
	repl := caddy.NewReplacer()
	names := make([]string, 0, len(cfg.Apps.HTTP.Servers))
	for name := range cfg.Apps.HTTP.Servers {
		names = append(names, name)
	}
	sort.Strings(names) // the same order on every run
	for _, name := range names {
		srv := cfg.Apps.HTTP.Servers[name]
		port := ""
		if len(srv.Listen) > 0 {
			if i := strings.LastIndexByte(srv.Listen[0], ':'); i >= 0 {
				port = srv.Listen[0][i+1:]
			}
		}
		walkRoutes(srv.Routes, "", func(raw json.RawMessage, host string) {
			var h handler.Handler
			if err := json.Unmarshal(raw, &h); err != nil {
				walkErr = errors.Join(walkErr, fmt.Errorf("decoding direct_upload handler: %w", err))
				return
			}
			t, err := h.Target(repl)
			if err != nil {
				walkErr = errors.Join(walkErr, err)
				return
			}
			if origin != "" {
				t.Origin, t.OriginSource = origin, "--origin"
			} else if o := siteOrigin(host, port); o != "" {
				t.Origin, t.OriginSource = o, "the site address; pass --origin to check another"
			}
			out = append(out, t)
		})
	}
	return out, walkErr
}

// walkRoutes calls fn on each direct_upload handler, with the host the
// nearest enclosing route matches ("" none).
func walkRoutes(routes []json.RawMessage, host string, fn func(json.RawMessage, string)) {
	for _, raw := range routes {
		var r struct {
			Match  []map[string]json.RawMessage `json:"match"`
			Handle []json.RawMessage            `json:"handle"`
		}
		if json.Unmarshal(raw, &r) != nil {
			continue
		}
		h := host
		for _, m := range r.Match {
			var hosts []string
			if json.Unmarshal(m["host"], &hosts) == nil && len(hosts) > 0 {
				h = hosts[0]
			}
		}
		for _, hr := range r.Handle {
			var hd struct {
				Handler string            `json:"handler"`
				Routes  []json.RawMessage `json:"routes"`
			}
			if json.Unmarshal(hr, &hd) != nil {
				continue
			}
			switch hd.Handler {
			case "direct_upload":
				fn(hr, h)
			case "subroute":
				walkRoutes(hd.Routes, h, fn)
			}
		}
	}
}

// siteOrigin guesses the origin browsers load the site from.
func siteOrigin(host, port string) string {
	if host == "" || strings.Contains(host, "*") {
		if port == "" {
			return ""
		}
		host = "localhost"
		if port == "80" {
			return "http://" + host
		}
		return "http://" + net.JoinHostPort(host, port)
	}
	switch port {
	case "", "443":
		return "https://" + host
	case "80":
		return "http://" + host
	}
	return "https://" + net.JoinHostPort(host, port)
}

// secretText is what `caddy direct-upload secret` prints: a whsec_ secret,
// or with ed an Ed25519 key pair, one key a line, each line saying whose.
func secretText(ed bool) (string, error) {
	if !ed {
		s, err := doctor.NewSecret()
		return s + "\n", err
	}
	sk, pk, err := webhook.NewEd25519KeyPair()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("signing key (webhook block, secret or signing_key): %s\npublic key (receiver, WEBHOOK_PUBLIC_KEY): %s\n", sk, pk), nil
}
