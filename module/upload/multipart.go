package upload

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// Multipart uploads, for files too large for one POST: the browser PUTs
// parts to presigned URLs, then complete assembles and verifies them like
// any upload. A presigned part cannot cap its size, so the part count is
// bounded by the declared size and the real size is checked after
// assembly (an oversize object is deleted and rejected).

// Part layout limits.
const (
	// MinPartSize is S3's minimum for every part but the last.
	MinPartSize = 5 << 20
	// PartSize is the part size used unless the upload needs larger ones
	// to stay within MaxParts.
	PartSize = 8 << 20
	// MaxParts is S3's limit of parts per upload.
	MaxParts = 10000
	// MaxSignPerCall bounds how many part URLs one request may ask for.
	MaxSignPerCall = 100
)

// partLayout chooses the part size and count for an upload of size bytes,
// with parts of at least min bytes.
func partLayout(size, min int64) (int64, int) {
	ps := min
	if need := (size + MaxParts - 1) / MaxParts; need > ps {
		ps = (need + 1<<20 - 1) / (1 << 20) * (1 << 20)
	}
	return ps, int((size + ps - 1) / ps)
}

// CreateMultipart grants a multipart upload: S3's upload is created, then
// the intent is stored durably before anything is answered. Without a
// declared size, the profile's maximum bounds the parts. When the client
// chooses its own part size (Uppy does), the part count allows parts as
// small as S3's minimum.
func (s *Service) CreateMultipart(ctx context.Context, p *Profile, identity string, req CreateRequest, clientParts bool) (*store.Intent, error) {
	in, err := s.draft(p, identity, req)
	if err == nil {
		err = s.admit(ctx, p, in)
	}
	if err != nil {
		return nil, err
	}
	if in.ChecksumSHA256 != "" && in.StagingKey == "" {
		// A multipart object's own SHA-256 is a checksum of checksums; only
		// the promotion's copy gives the full-object one to compare.
		return nil, errorf(ErrInvalidRequest, "checksum_sha256 on a multipart upload needs promotion (promote on)")
	}
	minPart := int64(PartSize)
	if clientParts {
		minPart = MinPartSize
	}
	in.PartSize, in.PartCount = partLayout(in.MaxSize, minPart)
	in.UploadID, err = p.objects().CreateMultipart(ctx, bucket.Multipart{
		Key: UploadKey(in), ContentType: in.ContentType, ContentDisposition: p.ContentDisposition,
		Metadata: map[string]string{MetaIntentID: in.ID},
	})
	if err != nil {
		s.Logger.Error("creating multipart upload failed", zap.String("profile", p.Name), zap.Error(err))
		metrics.S3Errors.WithLabelValues(p.Name, "create_multipart").Inc()
		return nil, storageErr(err)
	}
	if err := s.save(ctx, in); err != nil {
		// Not on the request's context: it may be what failed.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		_ = p.objects().AbortMultipart(actx, UploadKey(in), in.UploadID)
		cancel()
		return nil, err
	}
	return in, nil
}

// SignedPart is a presigned URL for one part, and the headers its PUT
// must carry (a part checksum, when the client gave one).
type SignedPart struct {
	Number  int32             `json:"part_number"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
}

// SignParts presigns PUT URLs for parts of a pending multipart upload,
// valid until the intent's policy expires.
func (s *Service) SignParts(ctx context.Context, p *Profile, identity, id string, numbers []int) ([]SignedPart, *store.Intent, error) {
	return s.SignPartsChecksummed(ctx, p, identity, id, numbers, nil)
}

// SignPartsChecksummed is SignParts where the client gave the SHA-256
// (base64) of some parts: their URLs sign x-amz-checksum-sha256, so the
// store refuses other bytes for that part. Parts without one are signed
// as by SignParts; the full-object checksum is checked at complete either
// way.
func (s *Service) SignPartsChecksummed(ctx context.Context, p *Profile, identity, id string, numbers []int, sums map[int]string) ([]SignedPart, *store.Intent, error) {
	for n, sum := range sums {
		if !slices.Contains(numbers, n) || sum == "" {
			return nil, nil, errorf(ErrInvalidRequest, "a part checksum is given for part %d, which is not asked for", n)
		}
		if err := checkChecksum(&Profile{}, sum); err != nil {
			return nil, nil, errorf(ErrInvalidRequest, "the checksum of part %d must be the base64 of its SHA-256", n)
		}
	}
	in, err := s.multipartIntent(ctx, p, identity, id)
	if err != nil {
		return nil, nil, err
	}
	if len(numbers) == 0 || len(numbers) > MaxSignPerCall {
		return nil, nil, errorf(ErrInvalidRequest, "ask for 1 to %d parts at a time", MaxSignPerCall)
	}
	left := in.ExpiresAt.Sub(s.Now())
	if left < time.Second {
		return nil, nil, ErrExpired
	}
	seen := map[int]bool{}
	out := make([]SignedPart, 0, len(numbers))
	for _, n := range numbers {
		if n < 1 || n > in.PartCount || seen[n] {
			return nil, nil, errorf(ErrInvalidRequest, "part numbers must be distinct, from 1 to %d", in.PartCount)
		}
		seen[n] = true
		if sum := sums[n]; sum != "" {
			put, err := p.objects().PresignPartSHA256(ctx, UploadKey(in), in.UploadID, int32(n), left, sum)
			if err != nil {
				metrics.S3Errors.WithLabelValues(p.Name, "presign").Inc()
				return nil, nil, storageErr(err)
			}
			out = append(out, SignedPart{Number: int32(n), URL: put.URL, Headers: put.Headers})
			continue
		}
		url, err := p.objects().PresignPart(ctx, UploadKey(in), in.UploadID, int32(n), left)
		if err != nil {
			metrics.S3Errors.WithLabelValues(p.Name, "presign").Inc()
			return nil, nil, storageErr(err)
		}
		out = append(out, SignedPart{Number: int32(n), URL: url})
	}
	return out, in, nil
}

// Parts lists the parts uploaded so far.
func (s *Service) Parts(ctx context.Context, p *Profile, identity, id string) ([]bucket.Part, error) {
	in, err := s.multipartIntent(ctx, p, identity, id)
	if err != nil {
		return nil, err
	}
	parts, err := p.objects().ListParts(ctx, UploadKey(in), in.UploadID)
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		return []bucket.Part{}, nil
	case err != nil:
		metrics.S3Errors.WithLabelValues(p.Name, "list_parts").Inc()
		return nil, storageErr(err)
	}
	return parts, nil
}

func (s *Service) multipartIntent(ctx context.Context, p *Profile, identity, id string) (*store.Intent, error) {
	in, err := s.Get(ctx, p, identity, id)
	if err != nil {
		return nil, err
	}
	if in.UploadID == "" {
		return nil, errorf(ErrInvalidRequest, "this upload is not a multipart upload")
	}
	if in.Status != store.StatusPending {
		return nil, outcomeErrOr(in)
	}
	return in, nil
}

// outcomeErrOr describes why a finalized intent takes no more parts.
func outcomeErrOr(in *store.Intent) error {
	if err := outcomeErr(in, ""); err != nil {
		return err
	}
	return errorf(ErrFinalized, "the upload is already %s", in.Status)
}

// assemble completes the multipart upload from the client's parts. An
// upload S3 no longer knows was assembled before (a repeated call, or a
// crash after assembly): the object is then verified as it is.
func (s *Service) assemble(ctx context.Context, p *Profile, in *store.Intent, parts []bucket.Part) error {
	if in.UploadID == "" {
		return errorf(ErrInvalidRequest, "parts were sent for an upload that is not multipart")
	}
	if len(parts) > in.PartCount {
		return errorf(ErrInvalidParts, "at most %d parts make up this upload", in.PartCount)
	}
	sorted := append([]bucket.Part(nil), parts...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Number < sorted[j].Number })
	for i, pt := range sorted {
		if pt.Number < 1 || int(pt.Number) > in.PartCount || i > 0 && sorted[i-1].Number == pt.Number || pt.ETag == "" {
			return errorf(ErrInvalidParts, "part numbers must be distinct, from 1 to %d, each with its ETag", in.PartCount)
		}
	}
	err := p.objects().CompleteMultipart(ctx, UploadKey(in), in.UploadID, sorted)
	switch {
	case err == nil, errors.Is(err, bucket.ErrNotFound):
		return nil
	case errors.Is(err, bucket.ErrInvalidParts):
		return errorf(ErrInvalidParts, "S3 refused the parts: %v", err)
	}
	s.Logger.Warn("completing multipart upload failed; nothing decided", zap.String("intent_id", in.ID), zap.Error(err))
	metrics.S3Errors.WithLabelValues(p.Name, "complete_multipart").Inc()
	return storageErr(err)
}

// abort discards the parts of an unfinished multipart upload.
func (s *Service) abort(ctx context.Context, p *Profile, in *store.Intent) error {
	if in.UploadID == "" {
		return nil
	}
	if err := p.objects().AbortMultipart(ctx, UploadKey(in), in.UploadID); err != nil {
		s.Logger.Warn("aborting multipart upload failed; nothing decided", zap.String("intent_id", in.ID), zap.Error(err))
		metrics.S3Errors.WithLabelValues(p.Name, "abort_multipart").Inc()
		return storageErr(err)
	}
	return nil
}
