package upload

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
)

// How grants upload.
const (
	MethodPost = "POST"
	MethodPut  = "PUT"
)

// createPut grants an upload as a presigned PUT: for stores without POST
// policies (Cloudflare R2, Backblaze B2, Google Cloud Storage's XML API).
// A PUT URL cannot carry a size range, so the client must declare the
// exact size, which is signed as Content-Length; the content type, the
// intent's metadata header (and the disposition, and the checksum when
// given) are signed headers too. A PUT that differs in any of them fails
// the store's signature check: the PUT is as strict as the POST policy.
// Everything after the upload (verify, promote, webhooks, sweeper) is the
// same as for POST.
func (s *Service) createPut(ctx context.Context, p *Profile, identity string, req CreateRequest) (*Grant, error) {
	if req.Size <= 0 {
		if _, _, _, _, err := checkRequest(p, req); err != nil {
			return nil, err
		}
		return nil, ErrSizeRequired
	}
	in, err := s.draft(p, identity, req)
	if err == nil {
		err = s.admit(ctx, p, in)
	}
	if err != nil {
		return nil, err
	}
	put, err := p.objects().PresignPut(ctx, bucket.PutRequest{
		Key: UploadKey(in), ContentType: in.ContentType, Size: in.Size,
		ContentDisposition: p.ContentDisposition,
		Metadata:           map[string]string{MetaIntentID: in.ID},
		ChecksumSHA256:     in.ChecksumSHA256,
		Expires:            (in.ExpiresAt.Sub(s.Now()) + time.Second - 1).Truncate(time.Second),
	})
	if err != nil {
		metrics.S3Errors.WithLabelValues(p.Name, "presign").Inc()
		return nil, logStorageErr(s.Logger.Error, "presigning failed", err, zap.String("profile", p.Name))
	}
	if err := s.save(ctx, in); err != nil {
		return nil, err
	}
	return &Grant{Intent: in, Method: MethodPut, URL: put.URL, Headers: put.Headers}, nil
}
