package handler

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

// uppy serves the S3 routes of Uppy's Companion under {base}/s3/, so that
// @uppy/aws-s3 pointed at the sidecar (companionEndpoint) uploads with no
// other server code. Every Uppy upload is an intent like any other: same
// identity, types, sizes, keys and webhooks. Uppy's "uploadId" is the
// intent id (Uppy treats it as opaque), which keeps the S3 upload id
// server-side.
//
//	GET    s3/params?filename=&type=&size=&metadata[k]=v simple upload: POST form, or PUT (method put; size required)
//	POST   s3/multipart {filename,type,metadata}         → {key,uploadId,bucket}
//	GET    s3/multipart/{uploadId}?key=                  → [{PartNumber,ETag,Size}]
//	GET    s3/multipart/{uploadId}/{partNumber}?key=     → {url,expires}
//	POST   s3/multipart/{uploadId}/complete?key= {parts} → {location,key,bucket}
//	DELETE s3/multipart/{uploadId}?key=                  → {}
//
// The metadata field checksum_sha256 (Uppy sends the file's meta, where a
// pre-processor such as examples/uppy-bundle/checksum.js puts the file's
// SHA-256) is not kept as metadata: it is the request's checksum_sha256,
// bound into the grant as for the JSON API.
//
// Errors are 4xx/5xx with {"message"} (what Uppy shows) beside the usual
// {"error":{"code","message"}}.
func (h *Handler) uppy(w http.ResponseWriter, r *http.Request, parts []string) {
	route, method := "", ""
	switch {
	case len(parts) == 1 && parts[0] == "params":
		route, method = "params", http.MethodGet
	case len(parts) == 1 && parts[0] == "multipart":
		route, method = "create", http.MethodPost
	case len(parts) == 2 && parts[0] == "multipart":
		route, method = "list", http.MethodGet
		if r.Method == http.MethodDelete {
			route, method = "abort", http.MethodDelete
		}
	case len(parts) == 3 && parts[0] == "multipart" && parts[2] == "complete":
		route, method = "complete", http.MethodPost
	case len(parts) == 3 && parts[0] == "multipart":
		route, method = "sign", http.MethodGet
	default:
		uppyError(w, errRouteNotFound)
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		uppyError(w, errMethodNotAllowed)
		return
	}
	identity, err := h.identity(r)
	if err != nil {
		uppyError(w, err)
		return
	}
	svc, err := h.app.Service()
	if err != nil {
		uppyError(w, upload.ErrUnavailable)
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	req := upload.CreateRequest{Filename: q.Get("filename"), ContentType: q.Get("type")}

	// Routes naming an upload must name its key too, as Companion's do.
	var in *store.Intent
	if len(parts) >= 2 {
		if in, err = svc.Get(ctx, h.profile, identity, parts[1]); err != nil {
			uppyError(w, err)
			return
		}
		if q.Get("key") != upload.UploadKey(in) {
			uppyError(w, &upload.Error{Code: "invalid_request", Message: "key does not match the upload"})
			return
		}
	}

	switch route {
	case "params":
		if req.Metadata, req.ChecksumSHA256, err = uppyMetadata(uppyQueryMetadata(q)); err != nil {
			uppyError(w, err)
			return
		}
		if v := q.Get("size"); v != "" { // method put needs it (signRequest clients send it)
			if req.Size, err = strconv.ParseInt(v, 10, 64); err != nil || req.Size < 1 {
				uppyError(w, &upload.Error{Code: "invalid_request", Message: "size must be a positive number of bytes"})
				return
			}
		}
		g, err := svc.Create(ctx, h.profile, identity, req)
		if err != nil {
			uppyError(w, err)
			return
		}
		// Uppy's getUploadParameters takes either shape: a form POST with
		// fields, or (method put) a PUT with headers.
		fields, headers := g.Fields, g.Headers
		if fields == nil {
			fields = map[string]string{}
		}
		if headers == nil {
			headers = map[string]string{}
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"method": g.Method, "url": g.URL, "fields": fields, "headers": headers,
			"expires": int(time.Until(g.Intent.ExpiresAt).Seconds()),
		})
	case "create":
		var body struct {
			Filename string         `json:"filename"`
			Type     string         `json:"type"`
			Metadata map[string]any `json:"metadata"`
		}
		if err := readUppyBody(r, int64(4<<10+h.MaxMetadata), &body); err != nil {
			uppyError(w, err)
			return
		}
		req = upload.CreateRequest{Filename: body.Filename, ContentType: body.Type}
		if req.Metadata, req.ChecksumSHA256, err = uppyMetadata(body.Metadata); err != nil {
			uppyError(w, err)
			return
		}
		in, err := svc.CreateMultipart(ctx, h.profile, identity, req, true)
		if err != nil {
			uppyError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"key": upload.UploadKey(in), "uploadId": in.ID, "bucket": in.Bucket})
	case "list":
		ps, err := svc.Parts(ctx, h.profile, identity, in.ID)
		if err != nil {
			uppyError(w, err)
			return
		}
		if ps == nil {
			ps = []bucket.Part{}
		}
		writeJSON(w, http.StatusOK, ps)
	case "sign":
		n, err := strconv.Atoi(parts[2])
		if err != nil {
			uppyError(w, &upload.Error{Code: "invalid_request", Message: "part number must be a number"})
			return
		}
		signed, in, err := svc.SignParts(ctx, h.profile, identity, in.ID, []int{n})
		if err != nil {
			uppyError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"url": signed[0].URL, "expires": int(time.Until(in.ExpiresAt).Seconds())})
	case "complete":
		var body struct {
			Parts []bucket.Part `json:"parts"`
		}
		if err := readUppyBody(r, 1<<20, &body); err != nil {
			uppyError(w, err)
			return
		}
		done, err := svc.Complete(ctx, h.profile, identity, in.ID, body.Parts)
		if err != nil {
			uppyError(w, err)
			return
		}
		answer := map[string]string{"location": h.profile.Location(done.Key), "key": done.Key, "bucket": done.Bucket}
		if done.ChecksumSHA256 != "" {
			answer["checksum_sha256"] = done.ChecksumSHA256
		}
		writeJSON(w, http.StatusOK, answer)
	case "abort":
		if _, err := svc.Fail(ctx, h.profile, identity, in.ID, "aborted in Uppy"); err != nil && !errors.Is(err, upload.ErrFinalized) {
			uppyError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{})
	}
}

// uppyQueryMetadata collects metadata[name]=value query parameters.
func uppyQueryMetadata(q url.Values) map[string]any {
	m := map[string]any{}
	for k, v := range q {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") && len(v) > 0 {
			m[strings.TrimSuffix(name, "]")] = v[0]
		}
	}
	return m
}

// uppyChecksumField is the metadata field that carries the file's SHA-256
// (base64) in Uppy's requests.
const uppyChecksumField = "checksum_sha256"

// uppyMetadata splits the metadata Uppy sent into the intent's metadata
// (JSON, nil when empty) and the declared checksum ("" when none), which
// Create and CreateMultipart check and bind like the JSON API's
// checksum_sha256.
func uppyMetadata(m map[string]any) ([]byte, string, error) {
	sum := ""
	if v, ok := m[uppyChecksumField]; ok {
		s, isString := v.(string)
		if !isString {
			return nil, "", &upload.Error{Code: "invalid_request", Message: "metadata checksum_sha256 must be the base64 of the file's SHA-256"}
		}
		sum = s
		delete(m, uppyChecksumField)
	}
	meta, err := jsonObject(m)
	return meta, sum, err
}

// readUppyBody reads a JSON body that may have fields this API does not
// use: Uppy sends what it has.
func readUppyBody(r *http.Request, limit int64, v any) error {
	r.Header.Set("Content-Type", "application/json")
	return readBodyLenient(r, limit, v)
}

// jsonObject encodes a metadata map (nil when empty).
func jsonObject(m map[string]any) ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, upload.ErrInvalidMetadata
	}
	return b, nil
}

// uppyError answers with the status of the error and a "message" Uppy
// shows to the user.
func uppyError(w http.ResponseWriter, err error) {
	var ue *upload.Error
	if !errors.As(err, &ue) {
		ue = errInternal
	}
	setRetryAfter(w, ue)
	writeJSON(w, statusFor(w, ue.Code), map[string]any{"message": ue.Message, "error": errorBody{Code: ue.Code, Message: ue.Message}})
}
