package handler

import (
	"embed"
	"net/http"
	"strings"
)

// assets are the browser client, served under the API's base path so a
// page can import it from its own origin:
//
//	import { upload } from "/uploads/direct-upload.js";
//
//go:embed assets/direct-upload.js assets/direct-upload.d.ts
var assets embed.FS

var assetTypes = map[string]string{
	"direct-upload.js":   "text/javascript; charset=utf-8",
	"direct-upload.d.ts": "application/typescript; charset=utf-8",
}

// serveAsset answers GET {base}/direct-upload.js (and .d.ts); false if
// name is not an asset.
func serveAsset(w http.ResponseWriter, r *http.Request, name string) bool {
	ct, ok := assetTypes[name]
	if !ok || strings.Contains(name, "/") {
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	data, err := assets.ReadFile("assets/" + name)
	if err != nil {
		return false
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return true
	}
	_, _ = w.Write(data)
	return true
}
