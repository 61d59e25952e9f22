package bucket

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// MaxCopySize is the largest object one CopyObject copies; larger objects
// are copied part by part (UploadPartCopy), in parts of this size.
const MaxCopySize = 5 << 30

// Copy copies the object at src to dst inside the bucket, server-side,
// only if src still has the ETag etag (x-amz-copy-source-if-match): the
// copy is exactly the bytes that were verified, or nothing. The copy keeps
// the source's content type, disposition and metadata. size is the
// source's size; above MaxCopySize the copy is a multipart copy. It
// returns the ETag of the new object; ErrChanged when src no longer has
// etag, ErrNotFound when src is gone. With sha256, the store computes the
// copy's full-object SHA-256 (x-amz-checksum-algorithm), whatever the
// source had (a multipart upload's composite checksum, or none).
func (b *Bucket) Copy(ctx context.Context, src, dst, etag string, size int64, sha256 bool) (string, error) {
	if size > b.copyPartSize {
		return b.copyParts(ctx, src, dst, etag, size)
	}
	in := &s3.CopyObjectInput{
		Bucket: aws.String(b.name), Key: aws.String(dst),
		CopySource:        aws.String(b.copySource(src)),
		CopySourceIfMatch: aws.String(quoteETag(etag)),
		MetadataDirective: types.MetadataDirectiveCopy,
	}
	if sha256 {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmSha256
	}
	out, err := b.api.CopyObject(ctx, in)
	if err != nil {
		return "", mapErr("copy", err)
	}
	if out.CopyObjectResult == nil {
		return "", fmt.Errorf("s3 copy: no result")
	}
	return strings.Trim(aws.ToString(out.CopyObjectResult.ETag), `"`), nil
}

// copyParts copies a large object with a multipart upload whose parts are
// copied from ranges of the source, each guarded by the source's ETag. A
// failed copy aborts its upload.
func (b *Bucket) copyParts(ctx context.Context, src, dst, etag string, size int64) (string, error) {
	head, err := b.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.name), Key: aws.String(src), IfMatch: aws.String(quoteETag(etag))})
	if err != nil {
		return "", mapErr("copy head", err)
	}
	cin := &s3.CreateMultipartUploadInput{
		Bucket: aws.String(b.name), Key: aws.String(dst),
		ContentType: head.ContentType, ContentDisposition: head.ContentDisposition, Metadata: head.Metadata,
	}
	created, err := b.api.CreateMultipartUpload(ctx, cin)
	if err != nil {
		return "", mapErr("copy create multipart upload", err)
	}
	uploadID := aws.ToString(created.UploadId)
	abort := func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = b.AbortMultipart(actx, dst, uploadID)
	}
	var parts []types.CompletedPart
	for n, off := int32(1), int64(0); off < size; n, off = n+1, off+b.copyPartSize {
		end := min(off+b.copyPartSize, size) - 1
		out, err := b.api.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: aws.String(b.name), Key: aws.String(dst), UploadId: aws.String(uploadID), PartNumber: aws.Int32(n),
			CopySource:        aws.String(b.copySource(src)),
			CopySourceIfMatch: aws.String(quoteETag(etag)),
			CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
		})
		if err != nil {
			abort()
			return "", mapErr("upload part copy", err)
		}
		if out.CopyPartResult == nil {
			abort()
			return "", fmt.Errorf("s3 upload part copy: no result")
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.CopyPartResult.ETag})
	}
	done, err := b.api.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(b.name), Key: aws.String(dst), UploadId: aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		abort()
		return "", mapErr("copy complete multipart upload", err)
	}
	return strings.Trim(aws.ToString(done.ETag), `"`), nil
}

// copySource names an object of the bucket as x-amz-copy-source wants it:
// bucket/key, URL-escaped segment by segment.
func (b *Bucket) copySource(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return url.PathEscape(b.name) + "/" + strings.Join(parts, "/")
}

func quoteETag(etag string) string { return `"` + strings.Trim(etag, `"`) + `"` }
