package bucket

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
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
	// static: creds are static keys from the config, never fetched.
	static bool

	stamps atomic.Pointer[stamps]
	macs   sync.Pool // of *keyedMAC

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

// stamps are the date strings of one second, formatted once for all the
// grants signed in it.
type stamps struct {
	unix              int64
	accessKey         string
	date, stamp, cred string
}

// sign returns the form fields of a presigned POST for pol (without
// Content-Type and pol.Fields, which the caller adds; extra is how many it
// will add), valid until expiration. The policy document is written
// straight from pol, in the order and shape conditions(pol) gives the SDK.
func (p *postSigner) sign(ctx context.Context, pol Policy, expiration time.Time, extra int) (map[string]string, error) {
	creds, err := p.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("retrieving credentials: %w", err)
	}
	t := p.now().UTC()
	st := p.stamps.Load()
	if st == nil || st.unix != t.Unix() || st.accessKey != creds.AccessKeyID {
		date := t.Format(shortDate)
		st = &stamps{unix: t.Unix(), accessKey: creds.AccessKeyID, date: date, stamp: t.Format(amzDate),
			cred: creds.AccessKeyID + "/" + date + "/" + p.region + "/s3/aws4_request"}
		p.stamps.Store(st)
	}
	var nameBuf [8]string
	names := nameBuf[:0]
	for k := range pol.Fields {
		names = append(names, k)
	}
	slices.Sort(names) // the same policy for the same inputs

	doc := make([]byte, 0, 1024)
	doc = append(doc, `{"conditions":[{"X-Amz-Algorithm":"`+sigAlgorithm+`"},{"bucket":`...)
	doc = AppendJSONString(doc, p.bucket)
	doc = append(doc, `},{"X-Amz-Credential":`...)
	doc = AppendJSONString(doc, st.cred)
	doc = append(doc, `},{"X-Amz-Date":`...)
	doc = AppendJSONString(doc, st.stamp)
	if creds.SessionToken != "" {
		doc = append(doc, `},{"X-Amz-Security-Token":`...)
		doc = AppendJSONString(doc, creds.SessionToken)
	}
	doc = append(doc, `},["eq","$Content-Type",`...)
	doc = AppendJSONString(doc, pol.ContentType)
	doc = append(doc, `],["content-length-range",`...)
	doc = strconv.AppendInt(doc, pol.MinSize, 10)
	doc = append(doc, ',')
	doc = strconv.AppendInt(doc, pol.MaxSize, 10)
	doc = append(doc, ']')
	for _, k := range names {
		doc = append(doc, ",{"...)
		doc = AppendJSONString(doc, k)
		doc = append(doc, ':')
		doc = AppendJSONString(doc, pol.Fields[k])
		doc = append(doc, '}')
	}
	doc = append(doc, `,{"key":`...)
	doc = AppendJSONString(doc, pol.Key)
	doc = append(doc, `}],"expiration":"`...)
	doc = expiration.UTC().AppendFormat(doc, time.RFC3339)
	doc = append(doc, `"}`...)

	// The encoded policy and the signature are made into one string: one
	// allocation for both form values.
	mac := p.mac(creds.SecretAccessKey, st.date)
	enc := base64.StdEncoding.AppendEncode(mac.buf[:0], doc)
	n := len(enc)
	mac.Write(enc)
	enc = hex.AppendEncode(enc, mac.Sum(mac.sum[:0]))
	both := string(enc)
	mac.buf = enc
	p.macs.Put(mac)

	fields, _ := fieldMaps.Get().(map[string]string)
	if fields == nil {
		fields = make(map[string]string, 6+extra)
	}
	fields["X-Amz-Algorithm"] = sigAlgorithm
	fields["X-Amz-Credential"] = st.cred
	fields["X-Amz-Date"] = st.stamp
	fields["X-Amz-Signature"] = both[n:]
	fields["key"] = pol.Key
	fields["policy"] = both[:n]
	if creds.SessionToken != "" {
		fields["X-Amz-Security-Token"] = creds.SessionToken
	}
	return fields, nil
}

// fieldMaps are form field maps given back with ReleaseFields: a grant's
// nine fields take four allocations in a new map, none in a reused one.
var fieldMaps sync.Pool

// ReleaseFields gives back the Fields of a Post once nothing reads them
// any more (the grant's answer is written): the next PresignPost reuses
// the map. Optional: a map not given back is simply collected.
func ReleaseFields(m map[string]string) {
	if m != nil && len(m) <= 16 {
		clear(m)
		fieldMaps.Put(m)
	}
}

// keyedMAC is an HMAC-SHA256 under one day's signing key, kept for reuse.
type keyedMAC struct {
	hash.Hash
	key []byte
	sum [sha256.Size]byte // room for the MAC, which escapes through Sum
	buf []byte            // room for the encoded policy and the signature
}

// mac returns an HMAC under the day's signing key, reset; give it back to
// p.macs after use. A pooled one under another day's key is dropped.
func (p *postSigner) mac(secret, date string) *keyedMAC {
	key := p.signingKey(secret, date)
	for {
		m, _ := p.macs.Get().(*keyedMAC)
		if m == nil {
			return &keyedMAC{Hash: hmac.New(sha256.New, key), key: key}
		}
		if hmac.Equal(m.key, key) {
			m.Reset()
			return m
		}
	}
}
