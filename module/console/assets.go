package console

import (
	"embed"
	"net/http"
)

// assets are the console's page, script and style: no framework, no build.
//
//go:embed assets/index.html assets/console.js assets/console.css
var assets embed.FS

var assetTypes = map[string]string{
	"console.js":  "text/javascript; charset=utf-8",
	"console.css": "text/css; charset=utf-8",
}

// serveAsset answers GET of the script and the style; false otherwise.
func serveAsset(w http.ResponseWriter, r *http.Request, name string) bool {
	ct, ok := assetTypes[name]
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	data, err := assets.ReadFile("assets/" + name)
	if err != nil {
		return false
	}
	w.Header().Set("Content-Type", ct)
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return true
	}
	_, _ = w.Write(data)
	return true
}
