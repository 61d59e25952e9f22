// Package bucket is the sidecar's narrow view of an S3-compatible bucket:
// presigned POST policies, and the few object calls that verify or remove an
// upload. It hides the SDK from the rest of the plugin and keeps every call
// the plugin makes listed in one interface.
package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Errors the object calls return for conditions callers act on.
var (
	// ErrNotFound is returned when the object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrChanged is returned by ReadHead when the object no longer has the
	// ETag the caller saw.
	ErrChanged = errors.New("object changed")
)

// API lists the SDK calls the plugin makes on objects; *s3.Client satisfies it.
type API interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	ListParts(ctx context.Context, in *s3.ListPartsInput, opts ...func(*s3.Options)) (*s3.ListPartsOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
	UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, opts ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
}

// PostPresigner mints presigned POST policies and part uploads;
// *s3.PresignClient satisfies it.
type PostPresigner interface {
	PresignPostObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.PresignPostOptions)) (*s3.PresignedPostRequest, error)
	PresignUploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error)
	PresignPutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error)
}

// Config says how to reach a bucket.
type Config struct {
	Bucket   string
	Region   string
	Endpoint string // empty: AWS S3
	// PathStyle addresses the bucket as endpoint/bucket rather than as a
	// subdomain; S3-compatible servers usually need it.
	PathStyle bool
	// AccessKeyID and SecretAccessKey, when both set, are used as static
	// credentials; otherwise the default AWS credential chain applies.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// HTTPClient overrides the SDK's HTTP client (tests).
	HTTPClient *http.Client
	// CopyPartSize is the size above which Copy copies part by part, and
	// the parts' size. Default (0): MaxCopySize, S3's limit (tests lower it).
	CopyPartSize int64
}

// Bucket is one configured bucket.
type Bucket struct {
	name    string
	api     API
	presign PostPresigner
	signer  *postSigner // nil: sign through presign

	absent *absentChecker // nil: Absent asks through Inspect
	// copyPartSize is the object size above which Copy uses a multipart
	// copy, and the size of its parts (S3 copies at most 5 GiB at once).
	copyPartSize int64
}

// New builds a Bucket from cfg. It makes no network call.
func New(ctx context.Context, cfg Config) (*Bucket, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("bucket name is required")
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(cfg.Region)}
	if cfg.AccessKeyID != "" || cfg.SecretAccessKey != "" {
		if cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
			return nil, errors.New("access key id and secret access key must be given together")
		}
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(cfg.HTTPClient))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Only compute checksums where S3 requires them: S3-compatible
		// servers differ in what they accept.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	b := NewWith(cfg.Bucket, client, s3.NewPresignClient(client))
	if cfg.CopyPartSize > 0 {
		b.copyPartSize = cfg.CopyPartSize
	}
	// The form's URL depends on the endpoint and addressing only, not on
	// the key or the credentials: resolve it once through the SDK, signed
	// with placeholder keys so that the real credentials, which may come
	// from instance metadata, resolve lazily on first use and provisioning
	// (`caddy validate`, every reload) makes no network call.
	// (Per-call client options are not applied by PresignPostObject: the
	// placeholder keys go on a presign client of the probe's own.)
	probeClient := s3.NewPresignClient(client, func(po *s3.PresignOptions) {
		po.ClientOptions = append(po.ClientOptions, func(o *s3.Options) {
			o.Credentials = credentials.NewStaticCredentialsProvider("probe", "probe", "")
		})
	})
	probe, err := probeClient.PresignPostObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String("probe")})
	if err != nil {
		return nil, fmt.Errorf("resolving the bucket's POST URL: %w", err)
	}
	b.signer = &postSigner{creds: awsCfg.Credentials, bucket: cfg.Bucket, region: awsCfg.Region, url: probe.URL, now: time.Now,
		static: cfg.AccessKeyID != ""}
	if b.absent, err = newAbsentChecker(awsCfg.Credentials, awsCfg.HTTPClient, awsCfg.Region, probe.URL); err != nil {
		return nil, err
	}
	return b, nil
}

// SignsOffline reports whether PresignPost can never wait: the policy is
// signed here with static credentials, so nothing is fetched (no
// credential refresh over the network) and no timeout is needed around it.
func (b *Bucket) SignsOffline() bool { return b.signer != nil && b.signer.static }

// NewWith builds a Bucket over given SDK implementations.
func NewWith(name string, api API, presign PostPresigner) *Bucket {
	return &Bucket{name: name, api: api, presign: presign, copyPartSize: MaxCopySize}
}

// ObjectURL is the URL of an object (the form's URL, then the escaped key).
func (b *Bucket) ObjectURL(key string) string {
	base := ""
	if b.signer != nil {
		base = b.signer.url
	}
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.TrimSuffix(base, "/") + "/" + strings.Join(parts, "/")
}

// Name returns the bucket's name.
func (b *Bucket) Name() string { return b.name }

// Policy is what a presigned POST permits.
type Policy struct {
	Key         string
	ContentType string
	MinSize     int64
	MaxSize     int64
	// Expiration is when the policy stops working. S3 reads it to the
	// second; zero means Expires from now.
	Expiration time.Time
	Expires    time.Duration
	// Fields are further form fields, each pinned by an exact condition
	// (x-amz-meta-*, success_action_status, Content-Disposition).
	Fields map[string]string
}

// Post is a presigned POST: the URL to post the form to and its fields.
type Post struct {
	URL    string
	Fields map[string]string
}

// PresignPost mints a presigned POST for p. Every field the browser must send
// is pinned by an exact condition, so the policy admits one key, one type and
// one size range only. It makes no network call.
func (b *Bucket) PresignPost(ctx context.Context, p Policy) (Post, error) {
	var fields map[string]string
	url := ""
	exp := p.Expiration
	if exp.IsZero() {
		exp = time.Now().Add(p.Expires)
	}
	if b.signer != nil {
		f, err := b.signer.sign(ctx, p, exp, 1+len(p.Fields))
		if err != nil {
			return Post{}, fmt.Errorf("presigning POST: %w", err)
		}
		fields, url = f, b.signer.url
	} else {
		out, err := b.presign.PresignPostObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(b.name),
			Key:    aws.String(p.Key),
		}, func(o *s3.PresignPostOptions) {
			o.Expires = time.Until(exp)
			o.Conditions = conditions(p)
		})
		if err != nil {
			return Post{}, fmt.Errorf("presigning POST: %w", err)
		}
		fields, url = out.Values, out.URL
	}
	fields["Content-Type"] = p.ContentType
	for k, v := range p.Fields {
		fields[k] = v
	}
	return Post{URL: url, Fields: fields}, nil
}

// conditions are p's policy conditions as the SDK's presigner takes them:
// type, size range, each field (sorted by name), then the key.
func conditions(p Policy) []any {
	conds := make([]any, 0, 3+len(p.Fields))
	conds = append(conds,
		[]any{"eq", "$Content-Type", p.ContentType},
		[]any{"content-length-range", p.MinSize, p.MaxSize},
	)
	names := make([]string, 0, len(p.Fields))
	for k := range p.Fields {
		names = append(names, k)
	}
	sort.Strings(names) // the same policy for the same inputs
	for _, k := range names {
		conds = append(conds, map[string]string{k: p.Fields[k]})
	}
	return append(conds, map[string]string{"key": p.Key})
}

// Object is what a HEAD tells about an object.
type Object struct {
	Size        int64
	ContentType string
	ETag        string
	Metadata    map[string]string
	// ChecksumSHA256 (base64) and ChecksumType ("FULL_OBJECT" or
	// "COMPOSITE") are the store's checksum, when Stat found one.
	ChecksumSHA256 string
	ChecksumType   string
}

// Stat returns the object's size, type, ETag, metadata and stored
// SHA-256 checksum (HEAD with checksum mode), or ErrNotFound.
func (b *Bucket) Stat(ctx context.Context, key string) (Object, error) {
	out, err := b.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.name), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return Object{}, mapErr("head", err)
	}
	o := Object{
		Size:        aws.ToInt64(out.ContentLength),
		ContentType: aws.ToString(out.ContentType),
		ETag:        strings.Trim(aws.ToString(out.ETag), `"`),
		Metadata:    out.Metadata,
	}
	o.ChecksumSHA256, o.ChecksumType = aws.ToString(out.ChecksumSHA256), string(out.ChecksumType)
	return o, nil
}

// Inspect returns what a HEAD would (size, type, ETag, metadata) and up
// to n leading bytes of the object, from one ranged GET: size, headers and
// bytes then come from the same version of the object, in one round trip.
func (b *Bucket) Inspect(ctx context.Context, key string, n int64) (Object, []byte, error) {
	out, err := b.api.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(b.name),
		Key:    aws.String(key),
		Range:  aws.String(fmt.Sprintf("bytes=0-%d", n-1)),
	})
	if err != nil {
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable {
			// An empty object has no byte to range over.
			o, err := b.Stat(ctx, key)
			return o, nil, err
		}
		return Object{}, nil, mapErr("ranged get", err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, n))
	if err != nil {
		return Object{}, nil, fmt.Errorf("reading object head: %w", err)
	}
	o := Object{
		Size:        aws.ToInt64(out.ContentLength),
		ContentType: aws.ToString(out.ContentType),
		ETag:        strings.Trim(aws.ToString(out.ETag), `"`),
		Metadata:    out.Metadata,
	}
	// "bytes 0-511/1234": the total is the object's size.
	if cr := aws.ToString(out.ContentRange); cr != "" {
		i := strings.LastIndexByte(cr, '/')
		total, err := strconv.ParseInt(cr[i+1:], 10, 64)
		if i < 0 || err != nil {
			return Object{}, nil, fmt.Errorf("s3 ranged get: bad Content-Range %q", cr)
		}
		o.Size = total
	}
	return o, data, nil
}

// Delete removes the object; deleting an absent object succeeds.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	_, err := b.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
	if err != nil {
		if err := mapErr("delete", err); errors.Is(err, ErrNotFound) {
			return nil
		} else {
			return err
		}
	}
	return nil
}

// Multipart is what a multipart upload is created with.
type Multipart struct {
	Key, ContentType, ContentDisposition string
	Metadata                             map[string]string
}

// CreateMultipart starts a multipart upload and returns its upload id.
func (b *Bucket) CreateMultipart(ctx context.Context, m Multipart) (string, error) {
	in := &s3.CreateMultipartUploadInput{
		Bucket: aws.String(b.name), Key: aws.String(m.Key),
		ContentType: aws.String(m.ContentType), Metadata: m.Metadata,
	}
	if m.ContentDisposition != "" {
		in.ContentDisposition = aws.String(m.ContentDisposition)
	}
	out, err := b.api.CreateMultipartUpload(ctx, in)
	if err != nil {
		return "", mapErr("create multipart upload", err)
	}
	return aws.ToString(out.UploadId), nil
}

// PresignPart returns a URL the browser PUTs one part's bytes to.
func (b *Bucket) PresignPart(ctx context.Context, key, uploadID string, part int32, expires time.Duration) (string, error) {
	out, err := b.presign.PresignUploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(b.name), Key: aws.String(key), UploadId: aws.String(uploadID), PartNumber: aws.Int32(part),
	}, func(o *s3.PresignOptions) { o.Expires = expires })
	if err != nil {
		return "", fmt.Errorf("presigning part: %w", err)
	}
	return out.URL, nil
}

// Part is an uploaded part of a multipart upload.
type Part struct {
	Number int32  `json:"PartNumber"`
	ETag   string `json:"ETag"`
	Size   int64  `json:"Size"`
}

// ListParts returns every uploaded part (all pages).
func (b *Bucket) ListParts(ctx context.Context, key, uploadID string) ([]Part, error) {
	var parts []Part
	in := &s3.ListPartsInput{Bucket: aws.String(b.name), Key: aws.String(key), UploadId: aws.String(uploadID)}
	for {
		out, err := b.api.ListParts(ctx, in)
		if err != nil {
			return nil, mapErr("list parts", err)
		}
		for _, p := range out.Parts {
			parts = append(parts, Part{Number: aws.ToInt32(p.PartNumber), ETag: aws.ToString(p.ETag), Size: aws.ToInt64(p.Size)})
		}
		if !aws.ToBool(out.IsTruncated) || out.NextPartNumberMarker == nil {
			return parts, nil
		}
		in.PartNumberMarker = out.NextPartNumberMarker
	}
}

// ErrInvalidParts is returned by CompleteMultipart when S3 refuses the
// list of parts (a part missing, too small, or an ETag that does not match).
var ErrInvalidParts = errors.New("invalid parts")

// CompleteMultipart assembles the object from its parts.
func (b *Bucket) CompleteMultipart(ctx context.Context, key, uploadID string, parts []Part) error {
	cp := make([]types.CompletedPart, 0, len(parts))
	for _, p := range parts {
		cp = append(cp, types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)})
	}
	_, err := b.api.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(b.name), Key: aws.String(key), UploadId: aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: cp},
	})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			switch ae.ErrorCode() {
			case "InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML":
				return fmt.Errorf("%w: %s", ErrInvalidParts, ae.ErrorMessage())
			}
		}
		return mapErr("complete multipart upload", err)
	}
	return nil
}

// AbortMultipart discards a multipart upload and its parts; an upload that
// is already gone (completed or aborted) is fine.
func (b *Bucket) AbortMultipart(ctx context.Context, key, uploadID string) error {
	_, err := b.api.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(b.name), Key: aws.String(key), UploadId: aws.String(uploadID),
	})
	if err != nil {
		if err := mapErr("abort multipart upload", err); !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

func mapErr(op string, err error) error {
	// An API error code names what is missing: only a missing key or
	// upload is "not found". A missing bucket (a wrong name, endpoint or
	// addressing) is an error like any other, on which nothing is decided.
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NoSuchUpload":
			return ErrNotFound
		case "NotFound": // HEAD answers have no body to tell more
			return ErrNotFound
		case "NoSuchBucket":
			return fmt.Errorf("s3 %s: %w", op, err)
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed {
		return ErrChanged
	}
	return fmt.Errorf("s3 %s: %w", op, err)
}
