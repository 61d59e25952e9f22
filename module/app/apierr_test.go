package app

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// TestAPIErrUnavailableIs503: an admin listing that fails because the
// store cannot be reached answers 503 (try again), other failures 500.
func TestAPIErrUnavailableIs503(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("%w: dial tcp: connection refused", store.ErrUnavailable), http.StatusServiceUnavailable},
		{errors.New("boom"), http.StatusInternalServerError},
	} {
		var apiErr caddy.APIError
		if !errors.As(apiErr2(tc.err), &apiErr) || apiErr.HTTPStatus != tc.want {
			t.Errorf("%v: status %d, want %d", tc.err, apiErr.HTTPStatus, tc.want)
		}
	}
	var e caddy.APIError
	if errors.As(apiErr(http.StatusBadRequest, "bad: %v", fmt.Errorf("%w", store.ErrUnavailable)), &e); e.HTTPStatus != http.StatusBadRequest {
		t.Errorf("a 400 became %d", e.HTTPStatus)
	}
}

func apiErr2(err error) error {
	return apiErr(http.StatusInternalServerError, "listing intents: %v", err)
}
