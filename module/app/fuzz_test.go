package app

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzGlobalOption: any text of the direct_upload global option block
// gives an app config or an error, never a panic.
func FuzzGlobalOption(f *testing.F) {
	for _, s := range []string{
		"direct_upload {\n storage /var/lib/x\n sweep_interval 1m\n expiry_grace 30s\n retention 168h\n}",
		"direct_upload", "direct_upload arg", "direct_upload {\n storage\n}", "direct_upload {\n storage a b\n}",
		"direct_upload {\n sweep_interval soon\n}", "direct_upload {\n retention -1s\n}", "direct_upload {\n bogus 1\n}",
		"direct_upload {\n sweep_interval 99999999999999999999h\n}", "direct_upload {", "direct_upload {\n {\n}\n}", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		v, err := parseGlobalOption(caddyfile.NewTestDispenser(src), nil)
		if err == nil && v == nil {
			t.Fatal("no app and no error")
		}
	})
}
