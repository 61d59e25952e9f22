package app

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestGlobalOptionErrorMessages: each mistake is named with its fix.
func TestGlobalOptionErrorMessages(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"direct_upload {\n storag /x\n}", `unknown direct_upload option "storag" (did you mean "storage"?); known: storage, store, sweep_interval, expiry_grace, retention, claim_lease`},
		{"direct_upload {\n sweep_intervall 1m 2m\n}", `unknown direct_upload option "sweep_intervall" (did you mean "sweep_interval"?)`},
		{"direct_upload {\n bogus\n}", `unknown direct_upload option "bogus"; known:`},
		{"direct_upload {\n storage\n}", `storage needs a value (a {$VARIABLE} that is unset expands to nothing)`},
		{"direct_upload {\n storage /a /b\n}", `storage takes one value, got 2: "/a /b"`},
		{"direct_upload {\n retention a week\n}", `retention takes one value, got 2: "a week"`},
		{"direct_upload {\n retention week\n}", `retention "week": want a duration such as 1m, 90s or 168h`},
		{"direct_upload on", `the direct_upload option takes no argument on its line (got "on")`},
	} {
		_, err := parseGlobalOption(caddyfile.NewTestDispenser(tc.src), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got  %v\n want %s", tc.src, err, tc.want)
		}
	}
	if _, err := parseGlobalOption(caddyfile.NewTestDispenser("direct_upload {\n storage /x\n retention 48h\n}"), nil); err != nil {
		t.Errorf("valid option: %v", err)
	}
}
