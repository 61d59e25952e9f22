package upload

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocsReasonsComplete: the reasons table of docs/errors.md lists
// every reason of Reasons, and only those.
func TestDocsReasonsComplete(t *testing.T) {
	b, err := os.ReadFile("../../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Reasons\n")
	if !ok {
		t.Fatal("docs/errors.md has no \"## Reasons\" section")
	}
	documented := map[Reason]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllStringSubmatch(section, -1) {
		documented[Reason(m[1])] = true
	}
	for r := range Reasons {
		if !documented[r] {
			t.Errorf("docs/errors.md does not list the reason %q", r)
		}
	}
	for r := range documented {
		if _, ok := Reasons[r]; !ok {
			t.Errorf("docs/errors.md lists the reason %q, which upload.Reasons does not have", r)
		}
	}
}
