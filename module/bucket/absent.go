package bucket

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// absentChecker asks S3 whether an object is absent with one ranged GET
// of its first byte, signed here (SigV4, header auth) and sent on the
// SDK's own HTTP client, instead of through the SDK's per-call middleware
// stack, which allocates ~40 KB per call: the sweeper makes this call for
// every expired intent. It keeps the SDK for credentials (and their
// refresh) and for the transport (connections, proxies, TLS settings).
//
// A GET (not a HEAD) because a 404's body tells a missing key
// (NoSuchKey) from a missing bucket (NoSuchBucket), which must never
// count as "absent".
type absentChecker struct {
	creds  aws.CredentialsProvider
	client aws.HTTPClient
	region string
	// base is the bucket's URL: scheme, host and the path objects' keys
	// are appended to (path style: "/bucket"; virtual host: "").
	scheme, host, path string
	now                func() time.Time

	mu      sync.Mutex
	keyDate string
	keyFor  string
	key     []byte

	bufs sync.Pool // of *absentBuf
}

// absentBuf is one call's scratch space.
type absentBuf struct {
	b    []byte
	sum  [sha256.Size]byte
	body [512]byte
	mac  hash.Hash
	macK []byte // the key mac was made with
}

// emptySHA256 is the hex SHA-256 of an empty payload: a GET's body.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func newAbsentChecker(creds aws.CredentialsProvider, client aws.HTTPClient, region, base string) (*absentChecker, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("bucket URL %q cannot address objects", base)
	}
	switch c := client.(type) {
	case nil:
		client = http.DefaultClient
	case *awshttp.BuildableClient:
		// Its own pool, with small buffers: its requests and answers
		// are a few hundred bytes, and some S3 servers (versitygw) close
		// the connection after every error answer, so a sweep of absent
		// objects dials once per call, each dial allocating the buffers.
		client = c.WithTransportOptions(func(t *http.Transport) { t.ReadBufferSize, t.WriteBufferSize = 1<<10, 1<<10 })
	}
	return &absentChecker{creds: creds, client: client, region: region, scheme: u.Scheme, host: u.Host,
		path: strings.TrimSuffix(u.EscapedPath(), "/"), now: time.Now}, nil
}

// signingKey derives the SigV4 key for a day and caches it.
func (a *absentChecker) signingKey(secret, date string) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keyDate == date && a.keyFor == secret {
		return a.key
	}
	k := hmacSHA256([]byte("AWS4"+secret), []byte(date))
	k = hmacSHA256(k, []byte(a.region))
	k = hmacSHA256(k, []byte("s3"))
	k = hmacSHA256(k, []byte("aws4_request"))
	a.keyDate, a.keyFor, a.key = date, secret, k
	return k
}

// appendURIEncoded appends s encoded as SigV4 wants an S3 key in a path:
// every byte but the unreserved ones (and '/') percent-encoded.
func appendURIEncoded(dst []byte, s string) []byte {
	const hexd = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || c == '/' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hexd[c>>4], hexd[c&15])
	}
	return dst
}

// absent makes the call: true if the key does not exist; false if it
// does (an empty object included); an error if S3 said anything else.
func (a *absentChecker) absent(ctx context.Context, key string) (bool, error) {
	creds, err := a.creds.Retrieve(ctx)
	if err != nil {
		return false, fmt.Errorf("s3 ranged get: credentials: %w", err)
	}
	buf, _ := a.bufs.Get().(*absentBuf)
	if buf == nil {
		buf = new(absentBuf)
	}
	defer a.bufs.Put(buf)

	now := a.now().UTC()
	var stamp [16]byte
	amz := now.AppendFormat(stamp[:0], amzDate)
	date := string(amz[:8])

	// The path, as sent and as signed (S3 signs it encoded once).
	b := append(buf.b[:0], a.path...)
	b = append(b, '/')
	b = appendURIEncoded(b, key)
	path := string(b)

	// Canonical request, hashed.
	b = append(b[:0], "GET\n"...)
	b = append(b, path...)
	b = append(b, "\n\nhost:"...)
	b = append(b, a.host...)
	b = append(b, "\nrange:bytes=0-0\nx-amz-content-sha256:"...)
	b = append(b, emptySHA256...)
	b = append(b, "\nx-amz-date:"...)
	b = append(b, amz...)
	signed := "host;range;x-amz-content-sha256;x-amz-date"
	if creds.SessionToken != "" {
		b = append(b, "\nx-amz-security-token:"...)
		b = append(b, creds.SessionToken...)
		signed += ";x-amz-security-token"
	}
	b = append(b, "\n\n"...)
	b = append(b, signed...)
	b = append(b, '\n')
	b = append(b, emptySHA256...)
	buf.sum = sha256.Sum256(b)

	// String to sign.
	scope := date + "/" + a.region + "/s3/aws4_request"
	b = append(b[:0], sigAlgorithm+"\n"...)
	b = append(b, amz...)
	b = append(b, '\n')
	b = append(b, scope...)
	b = append(b, '\n')
	b = hex.AppendEncode(b, buf.sum[:])
	k := a.signingKey(creds.SecretAccessKey, date)
	if buf.mac == nil || !bytes.Equal(buf.macK, k) {
		buf.mac, buf.macK = hmac.New(sha256.New, k), k
	}
	buf.mac.Reset()
	buf.mac.Write(b)
	sig := buf.mac.Sum(buf.sum[:0])

	b = append(b[:0], sigAlgorithm+" Credential="...)
	b = append(b, creds.AccessKeyID...)
	b = append(b, '/')
	b = append(b, scope...)
	b = append(b, ", SignedHeaders="...)
	b = append(b, signed...)
	b = append(b, ", Signature="...)
	b = hex.AppendEncode(b, sig)
	auth := string(b)
	buf.b = b

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.scheme+"://"+a.host+path, nil)
	if err != nil {
		return false, fmt.Errorf("s3 ranged get: %w", err)
	}
	req.URL.RawPath = path // as signed, whatever Go would escape
	req.Header = http.Header{
		"Range":                {"bytes=0-0"},
		"X-Amz-Content-Sha256": {emptySHA256},
		"X-Amz-Date":           {string(amz)},
		"Authorization":        {auth},
	}
	if creds.SessionToken != "" {
		req.Header["X-Amz-Security-Token"] = []string{creds.SessionToken}
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("s3 ranged get: %w", err)
	}
	defer resp.Body.Close()
	// Read the (small) body to its end so the connection is reused.
	nb, _ := io.ReadFull(resp.Body, buf.body[:])
	body := buf.body[:nb]
	if nb == len(buf.body) {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable:
		return false, nil // there; an empty object has no byte to range over
	case http.StatusNotFound:
		if bytes.Contains(body, []byte("<Code>NoSuchKey</Code>")) {
			return true, nil
		}
	}
	return false, fmt.Errorf("s3 ranged get: %w", &absentError{status: resp.StatusCode, code: errorCode(body)})
}

// absentError is an answer of S3's other than "there" or "no such key".
type absentError struct {
	status int
	code   string
}

func (e *absentError) Error() string {
	if e.code == "" {
		return fmt.Sprintf("status %d", e.status)
	}
	return fmt.Sprintf("status %d, %s", e.status, e.code)
}

// errorCode is the <Code> of an S3 error body, if any.
func errorCode(body []byte) string {
	_, rest, ok := bytes.Cut(body, []byte("<Code>"))
	if !ok {
		return ""
	}
	code, _, ok := bytes.Cut(rest, []byte("</Code>"))
	if !ok || len(code) > 64 {
		return ""
	}
	return string(code)
}

// Absent reports whether the object at key does not exist, with one
// ranged GET of its first byte. A missing bucket, denied access or any
// other failure is an error, never "absent". A Bucket built by NewWith
// (tests) asks through Inspect.
func (b *Bucket) Absent(ctx context.Context, key string) (bool, error) {
	if b.absent == nil {
		_, _, err := b.Inspect(ctx, key, 1)
		if errors.Is(err, ErrNotFound) {
			return true, nil
		}
		return false, err
	}
	return b.absent.absent(ctx, key)
}
