package app

import (
	"os"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDocsMetricsComplete: docs/metrics.md lists every metric the app
// registers, as a row of its table, and no metric it does not.
func TestDocsMetricsComplete(t *testing.T) {
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(direct_upload_[a-z0-9_]+)` \\|").FindAllStringSubmatch(string(b), -1) {
		documented[m[1]] = true
	}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	registered := map[string]bool{}
	for _, c := range collectors() {
		ch := make(chan *prometheus.Desc, 16)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no name in %s", d)
			}
			registered[m[1]] = true
		}
	}
	if len(registered) < 13 {
		t.Errorf("only %d metrics found: %v", len(registered), registered)
	}
	for name := range registered {
		if !documented[name] {
			t.Errorf("docs/metrics.md does not list %s", name)
		}
	}
	for name := range documented {
		if !registered[name] {
			t.Errorf("docs/metrics.md lists %s, which is not registered", name)
		}
	}
}

// TestDocsGlobalOptionsComplete: docs/caddyfile.md has a table row for
// every setting of the global direct_upload option.
func TestDocsGlobalOptionsComplete(t *testing.T) {
	b, err := os.ReadFile("../../docs/caddyfile.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range globalOptions {
		if !regexp.MustCompile("(?m)^\\| `" + name + "( [^`]*)?`").Match(b) {
			t.Errorf("docs/caddyfile.md has no table row for the global option %q", name)
		}
	}
}
