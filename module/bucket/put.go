package bucket

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// PutRequest is what a presigned PUT permits: one key, and exactly these
// headers, each signed.
type PutRequest struct {
	Key         string
	ContentType string
	// Size is signed as Content-Length: a body of any other length fails
	// the signature.
	Size               int64
	ContentDisposition string
	// Metadata are signed as x-amz-meta-* headers.
	Metadata map[string]string
	// ChecksumSHA256, when set (base64), is signed as x-amz-checksum-sha256:
	// the store computes the body's SHA-256 and refuses a mismatch.
	ChecksumSHA256 string
	Expires        time.Duration
}

// Put is a presigned PUT: the URL, and the headers the client must send
// with it (Content-Length too, which browsers set themselves and is left
// out here).
type Put struct {
	URL     string
	Headers map[string]string
}

// PresignPut mints a presigned PUT URL for r. Every header is a signed
// header, none is hoisted into the query string: the SDK's presigner
// otherwise moves x-amz-* headers there (aws-sdk-go-v2#2610), where S3
// ignores a checksum and a client could leave out the metadata. The
// client's checksum calculation is "when required" (New sets it), so no
// checksum of an empty body is baked into the URL. It makes no network
// call.
func (b *Bucket) PresignPut(ctx context.Context, r PutRequest) (Put, error) {
	if r.Size < 1 {
		return Put{}, fmt.Errorf("presigning PUT: a size is required")
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(b.name), Key: aws.String(r.Key),
		ContentType: aws.String(r.ContentType), ContentLength: aws.Int64(r.Size), Metadata: r.Metadata,
	}
	if r.ContentDisposition != "" {
		in.ContentDisposition = aws.String(r.ContentDisposition)
	}
	if r.ChecksumSHA256 != "" {
		in.ChecksumSHA256 = aws.String(r.ChecksumSHA256)
	}
	out, err := b.presign.PresignPutObject(ctx, in, func(o *s3.PresignOptions) {
		o.Expires = r.Expires
		o.Presigner = v4.NewSigner(func(so *v4.SignerOptions) { so.DisableHeaderHoisting = true })
		o.ClientOptions = append(o.ClientOptions, func(so *s3.Options) {
			so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		})
	})
	if err != nil {
		return Put{}, fmt.Errorf("presigning PUT: %w", err)
	}
	headers := make(map[string]string, len(out.SignedHeader))
	for k, v := range out.SignedHeader {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length":
			continue
		}
		if len(v) > 0 {
			headers[k] = v[0]
		}
	}
	return Put{URL: out.URL, Headers: headers}, nil
}

// PresignPartSHA256 is PresignPart with the part's SHA-256 (base64)
// signed as the x-amz-checksum-sha256 header (never hoisted): the store
// refuses a part with other bytes. It returns the URL and the header.
func (b *Bucket) PresignPartSHA256(ctx context.Context, key, uploadID string, part int32, expires time.Duration, sum string) (Put, error) {
	out, err := b.presign.PresignUploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(b.name), Key: aws.String(key), UploadId: aws.String(uploadID), PartNumber: aws.Int32(part),
		ChecksumSHA256: aws.String(sum),
	}, func(o *s3.PresignOptions) {
		o.Expires = expires
		o.Presigner = v4.NewSigner(func(so *v4.SignerOptions) { so.DisableHeaderHoisting = true })
		o.ClientOptions = append(o.ClientOptions, func(so *s3.Options) {
			so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		})
	})
	if err != nil {
		return Put{}, fmt.Errorf("presigning part: %w", err)
	}
	headers := map[string]string{}
	for k, v := range out.SignedHeader {
		if http.CanonicalHeaderKey(k) != "Host" && len(v) > 0 {
			headers[k] = v[0]
		}
	}
	return Put{URL: out.URL, Headers: headers}, nil
}
