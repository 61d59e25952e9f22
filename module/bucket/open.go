package bucket

import (
	"context"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Open returns a reader of the object's bytes, streamed from one GET on
// condition that the object still has the ETag etag (If-Match): the bytes
// read are the verified ones, or ErrChanged. ErrNotFound when it is gone.
// The caller closes the reader.
func (b *Bucket) Open(ctx context.Context, key, etag string) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)}
	if etag != "" {
		in.IfMatch = aws.String(quoteETag(etag))
	}
	out, err := b.api.GetObject(ctx, in)
	if err != nil {
		return nil, mapErr("get", err)
	}
	return out.Body, nil
}
