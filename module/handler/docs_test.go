package handler

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// readDoc reads a page of docs/ from the repository root.
func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDocsErrorsTableComplete: docs/errors.md lists every error code of
// statusOf with its status, and no code that statusOf does not know, so
// the page cannot drift from the handler again.
func TestDocsErrorsTableComplete(t *testing.T) {
	doc := readDoc(t, "errors.md")
	row := regexp.MustCompile("(?m)^\\| (\\d{3}) \\| `([a-z_]+)` \\|")
	documented := map[string]int{}
	for _, m := range row.FindAllStringSubmatch(doc, -1) {
		status, _ := strconv.Atoi(m[1])
		if _, dup := documented[m[2]]; dup {
			t.Errorf("docs/errors.md lists %q twice", m[2])
		}
		documented[m[2]] = status
	}
	for code, status := range statusOf {
		got, ok := documented[code]
		switch {
		case !ok:
			t.Errorf("docs/errors.md does not list the code %q (status %d)", code, status)
		case got != status:
			t.Errorf("docs/errors.md gives %q status %d; the handler answers %d", code, got, status)
		}
	}
	for code := range documented {
		if _, ok := statusOf[code]; !ok {
			t.Errorf("docs/errors.md lists %q, which the handler does not know", code)
		}
	}
	_, retry, _ := strings.Cut(doc, "\n`Retry-After`")
	for code := range retryAfter {
		if !strings.Contains(retry, "`"+code+"`") {
			t.Errorf("docs/errors.md does not say that %q carries Retry-After", code)
		}
	}
}

// TestDocsCaddyfileComplete: docs/caddyfile.md describes every
// subdirective of direct_upload and every option of its webhook block,
// each as a row of a table ("| `name`").
func TestDocsCaddyfileComplete(t *testing.T) {
	doc := readDoc(t, "caddyfile.md")
	for _, name := range subdirectives {
		if !regexp.MustCompile("(?m)^\\| `" + name + "( [^`]*)?`").MatchString(doc) {
			t.Errorf("docs/caddyfile.md has no table row for the subdirective %q", name)
		}
	}
	for _, name := range webhookOptions {
		if !regexp.MustCompile("(?m)^\\| (&nbsp;)*`" + name + "`").MatchString(doc) {
			t.Errorf("docs/caddyfile.md has no table row for the webhook option %q", name)
		}
	}
}
