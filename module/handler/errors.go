package handler

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

// Errors the handler itself raises, before a request reaches the service.
var (
	errInvalidJSON      = &upload.Error{Code: "invalid_json", Message: "the body is not valid JSON"}
	errUnknownField     = &upload.Error{Code: "unknown_field", Message: "the body has a field this API does not know"}
	errBodyTooLarge     = &upload.Error{Code: "body_too_large", Message: "the request body is too large"}
	errUnsupportedMedia = &upload.Error{Code: "unsupported_media_type", Message: "send the body as application/json"}
	errMethodNotAllowed = &upload.Error{Code: "method_not_allowed", Message: "method not allowed on this path"}
	errRouteNotFound    = &upload.Error{Code: "not_found", Message: "no such route"}
	errInternal         = &upload.Error{Code: "internal_error", Message: "internal error"}
)

// statusOf maps every stable error code to its HTTP status. A code missing
// here is a bug; it is answered as 500.
var statusOf = map[string]int{
	"invalid_json":           http.StatusBadRequest,
	"unknown_field":          http.StatusBadRequest,
	"invalid_request":        http.StatusBadRequest,
	"invalid_filename":       http.StatusBadRequest,
	"invalid_metadata":       http.StatusBadRequest,
	"invalid_parts":          http.StatusBadRequest,
	"size_required":          http.StatusBadRequest,
	"checksum_required":      http.StatusBadRequest,
	"unauthenticated":        http.StatusUnauthorized,
	"not_found":              http.StatusNotFound,
	"method_not_allowed":     http.StatusMethodNotAllowed,
	"object_missing":         http.StatusConflict,
	"intent_finalized":       http.StatusConflict,
	"busy":                   http.StatusConflict,
	"bucket_changed":         http.StatusConflict,
	"expired":                http.StatusGone,
	"body_too_large":         http.StatusRequestEntityTooLarge,
	"unsupported_media_type": http.StatusUnsupportedMediaType,
	"type_not_allowed":       http.StatusUnprocessableEntity,
	"too_large":              http.StatusUnprocessableEntity,
	"metadata_too_large":     http.StatusUnprocessableEntity,
	"upload_rejected":        http.StatusUnprocessableEntity,
	"internal_error":         http.StatusInternalServerError,
	"storage_error":          http.StatusBadGateway,
	"storage_timeout":        http.StatusServiceUnavailable,
	"store_unavailable":      http.StatusServiceUnavailable,
	"quota_exceeded":         http.StatusTooManyRequests,
	"rate_limited":           http.StatusTooManyRequests,
	"scan_pending":           http.StatusConflict,
}

// retryAfter is the Retry-After, in seconds, of codes that decide nothing
// and are worth trying again shortly.
var retryAfter = map[string]string{
	"storage_timeout":   "5",
	"store_unavailable": "5",
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Reason  string `json:"reason,omitempty"`
}

// writeError answers with the error's status and {"error":{code,message}};
// when the error concerns an intent (a rejected upload), the intent's view
// is included beside it.
func writeError(w http.ResponseWriter, err error, v *intentView) {
	var ue *upload.Error
	if !errors.As(err, &ue) {
		ue = errInternal
	}
	setRetryAfter(w, ue)
	status := statusFor(w, ue.Code)
	body := struct {
		Error errorBody `json:"error"`
		*intentView
	}{Error: errorBody{Code: ue.Code, Message: ue.Message}, intentView: v}
	if v != nil {
		body.Error.Reason = v.Reason
	}
	writeJSON(w, status, body)
}

// statusFor is the HTTP status of an error code; for codes worth trying
// again shortly it sets Retry-After too.
func statusFor(w http.ResponseWriter, code string) int {
	if ra, ok := retryAfter[code]; ok {
		w.Header().Set("Retry-After", ra)
	}
	if status, ok := statusOf[code]; ok {
		return status
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	setJSONHeaders(w)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// setJSONHeaders marks an API answer: JSON, never cached (grants are
// credentials), never sniffed.
func setJSONHeaders(w http.ResponseWriter) {
	// As Header.Set would, with the keys already canonical and the three
	// values in one allocation instead of three; each value slice is
	// capped, so an append to one header cannot write into another.
	v := make([]string, 3)
	v[0], v[1], v[2] = "application/json", "no-store", "nosniff"
	h := w.Header()
	h["Content-Type"] = v[0:1:1]
	h["Cache-Control"] = v[1:2:2]
	h["X-Content-Type-Options"] = v[2:3:3]
}
