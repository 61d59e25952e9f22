package bucket

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// postSigner signs POST policies itself instead of going through the SDK's
// presign middleware stack, which costs most of a grant's CPU. It keeps the
// SDK for credentials (and their refresh) and builds the policy document
// exactly as the SDK's createPolicyDocument does: a test checks the output
// is byte-identical to PresignPostObject's for the same inputs, and the
// integration tests check the real S3 server accepts it.
type postSigner struct {
	creds  aws.CredentialsProvider
	bucket string
	region string
	url    string
	now    func() time.Time

	mu      sync.Mutex
	keyDate string
	keyFor  string
	key     []byte
}

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	shortDate    = "20060102"
	amzDate      = "20060102T150405Z"
)

// signingKey derives the SigV4 key for a day and caches it: it changes only
// with the date (or the secret), not per request.
func (p *postSigner) signingKey(secret, date string) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keyDate == date && p.keyFor == secret {
		return p.key
	}
	k := hmacSHA256([]byte("AWS4"+secret), []byte(date))
	k = hmacSHA256(k, []byte(p.region))
	k = hmacSHA256(k, []byte("s3"))
	k = hmacSHA256(k, []byte("aws4_request"))
	p.keyDate, p.keyFor, p.key = date, secret, k
	return k
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// sign returns the form fields of a presigned POST for key with the extra
// conditions (which must pin the key themselves), valid until expiration.
func (p *postSigner) sign(ctx context.Context, key string, conds []any, expiration time.Time) (map[string]string, error) {
	creds, err := p.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("retrieving credentials: %w", err)
	}
	t := p.now().UTC()
	date := t.Format(shortDate)
	credential := creds.AccessKeyID + "/" + date + "/" + p.region + "/s3/aws4_request"
	stamp := t.Format(amzDate)
	all := make([]any, 0, 5+len(conds))
	all = append(all,
		map[string]string{"X-Amz-Algorithm": sigAlgorithm},
		map[string]string{"bucket": p.bucket},
		map[string]string{"X-Amz-Credential": credential},
		map[string]string{"X-Amz-Date": stamp},
	)
	if creds.SessionToken != "" {
		all = append(all, map[string]string{"X-Amz-Security-Token": creds.SessionToken})
	}
	all = append(all, conds...)
	doc, err := appendPolicy(make([]byte, 0, 1024), all, expiration.UTC().Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("encoding policy: %w", err)
	}
	policy := base64.StdEncoding.EncodeToString(doc)
	fields := map[string]string{
		"X-Amz-Algorithm":  sigAlgorithm,
		"X-Amz-Credential": credential,
		"X-Amz-Date":       stamp,
		"X-Amz-Signature":  hex.EncodeToString(hmacSHA256(p.signingKey(creds.SecretAccessKey, date), []byte(policy))),
		"key":              key,
		"policy":           policy,
	}
	if creds.SessionToken != "" {
		fields["X-Amz-Security-Token"] = creds.SessionToken
	}
	return fields, nil
}
