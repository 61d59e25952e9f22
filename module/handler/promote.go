package handler

import (
	"fmt"
	"strings"
)

// DefaultStagingPrefix is where uploads land before promotion.
const DefaultStagingPrefix = "staging/"

// validatePromotion checks the promotion settings: on or off, and a
// staging prefix that is a plain folder (safe characters, ending in '/')
// the key template does not render into, so no grant can name a final key.
func validatePromotion(promote, prefix, keyTemplate string) error {
	if promote != "on" && promote != "off" {
		return fmt.Errorf("direct_upload: promote must be on or off, not %q", promote)
	}
	if !strings.HasSuffix(prefix, "/") || strings.HasPrefix(prefix, "/") || strings.Contains(prefix, "//") || strings.Contains(prefix, "..") {
		return fmt.Errorf("direct_upload: staging_prefix %q: want a folder such as staging/ (no leading slash, ending in /)", prefix)
	}
	for _, c := range prefix {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/') {
			return fmt.Errorf("direct_upload: staging_prefix %q: character %q is not allowed in keys", prefix, c)
		}
	}
	if promote == "on" {
		lit, _, _ := strings.Cut(keyTemplate, "{")
		// (A placeholder rendering to the prefix is refused per grant.)
		if strings.HasPrefix(lit, prefix) {
			return fmt.Errorf("direct_upload: key %q renders under staging_prefix %q: a grant could then name a final key", keyTemplate, prefix)
		}
	}
	return nil
}
