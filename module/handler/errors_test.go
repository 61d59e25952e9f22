package handler

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

// TestStoreUnavailableIs503WithRetryAfter: a grant the store could not
// record (the database down: the service answers ErrUnavailable) is a 503
// with the stable code store_unavailable and a Retry-After, for the API
// and for Uppy alike.
func TestStoreUnavailableIs503WithRetryAfter(t *testing.T) {
	err := fmt.Errorf("saving: %w", upload.ErrUnavailable)
	for name, write := range map[string]func(http.ResponseWriter){
		"api":  func(w http.ResponseWriter) { writeError(w, err, nil) },
		"uppy": func(w http.ResponseWriter) { uppyError(w, err) },
	} {
		rec := httptest.NewRecorder()
		write(rec)
		var body struct {
			Error errorBody `json:"error"`
		}
		if e := json.Unmarshal(rec.Body.Bytes(), &body); e != nil {
			t.Fatal(e)
		}
		if rec.Code != http.StatusServiceUnavailable || body.Error.Code != "store_unavailable" || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s: %d %q, Retry-After %q", name, rec.Code, body.Error.Code, rec.Header().Get("Retry-After"))
		}
	}
	// Other errors carry no Retry-After.
	rec := httptest.NewRecorder()
	writeError(rec, upload.ErrNotFound, nil)
	if rec.Header().Get("Retry-After") != "" {
		t.Errorf("404 with Retry-After")
	}
}
