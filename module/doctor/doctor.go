// Package doctor checks a deployment of one upload profile against the real
// world: where its credentials come from, whether its bucket is reachable
// with them, whether the store accepts a real grant, whether the bucket's
// CORS lets the site's browsers in, and whether the webhook receiver
// accepts a signed event. Each check gives one Result, with what to fix
// when it fails. `caddy direct-upload check` runs them all; the app runs
// the credential and bucket checks in the background at start.
package doctor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

// Status is a check's outcome.
type Status string

// The outcomes. Only Fail makes `check` exit non-zero.
const (
	OK   Status = "ok"
	Fail Status = "FAIL"
	Warn Status = "warn"
	Skip Status = "skip"
)

// The checks, in the order they run.
const (
	CheckCredentials = "credentials"
	CheckAddressing  = "addressing"
	CheckBucket      = "bucket"
	CheckGrant       = "grant"
	CheckCORS        = "cors"
	CheckWebhook     = "webhook"
)

// Result is one check's outcome: Detail says what was found, Fix what to
// change when it is not ok.
type Result struct {
	Profile string `json:"profile"`
	Check   string `json:"check"`
	Status  Status `json:"status"`
	Detail  string `json:"detail"`
	Fix     string `json:"fix,omitempty"`
}

// String is the result as one line: "ok   images  bucket: ... -> fix".
func (r Result) String() string {
	s := fmt.Sprintf("%-4s %s %s: %s", r.Status, r.Profile, r.Check, r.Detail)
	if r.Fix != "" {
		s += " -> fix: " + r.Fix
	}
	return s
}

// Target is what the checks need to know of one profile.
type Target struct {
	Profile string
	Bucket  bucket.Config
	// KeySource says where static keys came from in the config, for the
	// credentials line (e.g. "access_key_id {env.AWS_ACCESS_KEY_ID}").
	KeySource string
	// Webhook is the profile's endpoint, nil for none.
	Webhook *webhook.Endpoint
	// Origin is the site's origin browsers upload from ("" unknown).
	Origin string
	// OriginSource says where Origin came from ("--origin", "site address").
	OriginSource string
}

// Timeout bounds each network check.
const Timeout = 10 * time.Second

// Run runs every check on t. Checks that depend on a failed one are skipped.
func Run(ctx context.Context, t Target) []Result {
	return run(ctx, t, true)
}

// Startup runs the checks that write nothing: credentials, addressing and
// bucket.
func Startup(ctx context.Context, t Target) []Result {
	return run(ctx, t, false)
}

func run(ctx context.Context, t Target, all bool) []Result {
	var out []Result
	add := func(check string, st Status, detail, fix string) {
		out = append(out, Result{Profile: t.Profile, Check: check, Status: st, Detail: detail, Fix: fix})
	}
	skipRest := func(reason string, checks ...string) []Result {
		for _, c := range checks {
			add(c, Skip, "not run: "+reason, "")
		}
		return out
	}
	later := []string{CheckBucket}
	if all {
		later = append(later, CheckGrant, CheckCORS)
	}

	creds, st, detail, fix := resolveCredentials(ctx, t)
	add(CheckCredentials, st, detail, fix)
	st, detail, fix = checkAddressing(t.Bucket)
	add(CheckAddressing, st, detail, fix)
	if out[0].Status == Fail || out[1].Status == Fail {
		out = skipRest("fix the checks above first", later...)
	} else {
		client := newClient(t.Bucket, creds)
		st, detail, fix = checkBucket(ctx, client, t.Bucket)
		add(CheckBucket, st, detail, fix)
		if all {
			if st == Fail {
				out = skipRest("the bucket is not reachable", CheckGrant, CheckCORS)
			} else {
				st, detail, fix = checkGrant(ctx, t.Bucket)
				add(CheckGrant, st, detail, fix)
				st, detail, fix = checkCORS(ctx, client, t)
				add(CheckCORS, st, detail, fix)
			}
		}
	}
	if all {
		st, detail, fix = checkWebhook(ctx, t)
		add(CheckWebhook, st, detail, fix)
	}
	return out
}

// Failed reports whether any result is a failure.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

// MissingCredentialsFix is the fix for a profile with no credentials.
const MissingCredentialsFix = "set access_key_id and secret_access_key in the direct_upload block " +
	"(e.g. access_key_id {env.AWS_ACCESS_KEY_ID}), or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY " +
	"(or AWS_PROFILE with ~/.aws/credentials) for Caddy's process"

// resolveCredentials finds the credentials the profile signs with and names
// their source.
func resolveCredentials(ctx context.Context, t Target) (aws.CredentialsProvider, Status, string, string) {
	c := t.Bucket
	if c.AccessKeyID != "" || c.SecretAccessKey != "" {
		if c.AccessKeyID == "" || c.SecretAccessKey == "" {
			missing := "access_key_id"
			if c.SecretAccessKey == "" {
				missing = "secret_access_key"
			}
			return nil, Fail, missing + " is empty while the other key is set",
				"give both access_key_id and secret_access_key (is the variable feeding " + missing + " set?), or neither to use the default AWS chain"
		}
		src := "static keys in the config"
		if t.KeySource != "" {
			src += " (" + t.KeySource + ")"
		}
		return credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken), OK,
			src + ", access key " + maskKey(c.AccessKeyID), ""
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(c.Region))
	if err != nil {
		return nil, Fail, "loading the AWS configuration failed: " + err.Error(), "fix the shared config file (~/.aws/config, AWS_CONFIG_FILE) or " + MissingCredentialsFix
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, Fail, "no AWS credentials found (no static keys in the config, none in the environment, shared files or instance role)", MissingCredentialsFix
	}
	return cfg.Credentials, OK, describeSource(creds.Source) + ", access key " + maskKey(creds.AccessKeyID), ""
}

// describeSource names an SDK credential source as an operator knows it.
func describeSource(src string) string {
	switch {
	case src == "EnvConfigCredentials":
		return "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
	case strings.HasPrefix(src, "SharedConfigCredentials"):
		return "shared credentials file" + strings.TrimPrefix(src, "SharedConfigCredentials")
	case src == "EC2RoleProvider":
		return "EC2 instance role (instance metadata)"
	case strings.Contains(src, "WebIdentity"):
		return "web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)"
	case strings.Contains(src, "SSO"):
		return "AWS SSO session"
	case strings.Contains(src, "Process"):
		return "credential_process of the shared config"
	case strings.Contains(src, "AssumeRole"):
		return "assumed role"
	case src == "":
		return "default AWS credential chain"
	}
	return "default AWS credential chain (" + src + ")"
}

// maskKey shows enough of an access key id to recognise it.
func maskKey(id string) string {
	if len(id) <= 8 {
		return id[:min(len(id), 2)] + "…"
	}
	return id[:4] + "…" + id[len(id)-4:]
}

// checkAddressing looks at how the bucket is addressed: virtual-host style
// puts the bucket in the host name, which an IP address or a local name
// cannot carry.
func checkAddressing(c bucket.Config) (Status, string, string) {
	if c.Endpoint == "" {
		if c.PathStyle {
			return OK, "AWS S3 in " + c.Region + ", path-style", ""
		}
		return OK, "AWS S3 in " + c.Region + ", virtual-host style (" + c.Bucket + ".s3." + c.Region + ".amazonaws.com)", ""
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Fail, fmt.Sprintf("endpoint %q is not an absolute http(s) URL", c.Endpoint), "write endpoint as a URL such as http://127.0.0.1:7070 or https://s3.example.com"
	}
	host := u.Hostname()
	if c.PathStyle {
		return OK, "path-style: " + strings.TrimSuffix(c.Endpoint, "/") + "/" + c.Bucket, ""
	}
	vhost := c.Bucket + "." + host
	if ip := net.ParseIP(host); ip != nil || host == "localhost" || !strings.Contains(host, ".") {
		return Fail, fmt.Sprintf("virtual-host addressing on the local endpoint %s would send requests to %s, which cannot resolve", c.Endpoint, vhost),
			"add path_style to the direct_upload block (S3-compatible servers on an IP or local name need path-style addressing)"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := net.DefaultResolver.LookupHost(ctx, vhost); err != nil {
		return Fail, fmt.Sprintf("virtual-host addressing: %s does not resolve", vhost),
			"add path_style to the direct_upload block, or give the bucket a DNS name (wildcard record *." + host + ")"
	}
	return OK, "virtual-host style: " + u.Scheme + "://" + vhost, ""
}

func newClient(c bucket.Config, creds aws.CredentialsProvider) *s3.Client {
	return s3.New(s3.Options{
		Region:                     c.Region,
		Credentials:                creds,
		UsePathStyle:               c.PathStyle,
		RetryMaxAttempts:           1,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		if c.HTTPClient != nil {
			o.HTTPClient = c.HTTPClient
		}
	})
}

// checkBucket asks for the bucket (HeadBucket) and explains a refusal; a
// HEAD answer has no body, so a refusal is asked again with a GET to learn
// its error code.
func checkBucket(ctx context.Context, client *s3.Client, c bucket.Config) (Status, string, string) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	_, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(c.Bucket)})
	if err == nil {
		return OK, fmt.Sprintf("bucket %q exists and is reachable with these credentials", c.Bucket), ""
	}
	if _, lerr := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(c.Bucket), MaxKeys: aws.Int32(1)}); lerr != nil {
		var ae smithy.APIError
		if errors.As(lerr, &ae) {
			err = lerr
		}
	}
	detail, fix := ExplainS3(err, c)
	return Fail, detail, fix
}

// ExplainS3 turns an S3 error into what happened and what to fix, for the
// operator (it names the bucket and endpoint: never show it to clients).
func ExplainS3(err error, c bucket.Config) (detail, fix string) {
	endpoint := c.Endpoint
	if endpoint == "" {
		endpoint = "AWS S3 (" + c.Region + ")"
	}
	code, status := S3Code(err)
	switch {
	case code == "NoSuchBucket" || (code == "" || code == "NotFound") && status == http.StatusNotFound:
		return fmt.Sprintf("bucket %q does not exist at %s", c.Bucket, endpoint),
			"create the bucket, or fix the bucket name (and endpoint/region) in the direct_upload block"
	case code == "SignatureDoesNotMatch":
		return "the store rejected the signature (SignatureDoesNotMatch): the secret access key is wrong",
			"fix secret_access_key (or AWS_SECRET_ACCESS_KEY) to the secret that belongs to the access key"
	case code == "InvalidAccessKeyId" || code == "XAdminUserNotFound": // the latter: versitygw
		return "the store does not know the access key (" + code + ")",
			"fix access_key_id (or AWS_ACCESS_KEY_ID), and check the endpoint is the store the key belongs to"
	case code == "AccessDenied" || status == http.StatusForbidden:
		return fmt.Sprintf("access to bucket %q denied (%s)", c.Bucket, orStatus(code, status)),
			"fix the credentials, or grant them s3:ListBucket, s3:PutObject, s3:GetObject and s3:DeleteObject on the bucket"
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || status == http.StatusMovedPermanently:
		return fmt.Sprintf("bucket %q is in another region (%s)", c.Bucket, orStatus(code, status)),
			"set region to the bucket's region"
	case code == "" && status == 0:
		var ne net.Error
		var oe *net.OpError
		msg := "cannot reach the endpoint " + endpoint
		if errors.As(err, &oe) || errors.As(err, &ne) {
			msg += ": " + rootCause(err)
		} else if err != nil {
			msg += ": " + rootCause(err)
		}
		return msg, "fix endpoint (scheme, host and port of the S3 server) and check the server is running and reachable from Caddy"
	}
	return fmt.Sprintf("the store answered %s", orStatus(code, status)), "see the S3 server's documentation for this error"
}

func orStatus(code string, status int) string {
	if code != "" {
		if status != 0 {
			return fmt.Sprintf("%s, HTTP %d", code, status)
		}
		return code
	}
	return fmt.Sprintf("HTTP %d", status)
}

// S3Code returns the S3 error code and HTTP status of err, if any.
func S3Code(err error) (string, int) {
	code, status := "", 0
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

// rootCause is the innermost error's text (a dial error, not the SDK's
// whole chain).
func rootCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		var oe *net.OpError
		if errors.As(err, &oe) && !errors.As(u, &oe) {
			return err.Error()
		}
		err = u
	}
}

// checkGrant mints a real presigned POST through the profile's own bucket
// code, posts a few bytes with it as a browser would, reads the object
// back and deletes it.
func checkGrant(ctx context.Context, c bucket.Config) (Status, string, string) {
	ctx, cancel := context.WithTimeout(ctx, 3*Timeout)
	defer cancel()
	b, err := bucket.New(ctx, c)
	if err != nil {
		return Fail, "building the bucket client: " + err.Error(), "fix the profile's bucket settings"
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	key := ".direct-upload-check/" + hex.EncodeToString(rnd[:]) + ".txt"
	data := []byte("direct-upload check\n")
	post, err := b.PresignPost(ctx, bucket.Policy{
		Key: key, ContentType: "text/plain", MinSize: 1, MaxSize: 1024, Expires: time.Minute,
		Fields: map[string]string{"success_action_status": "201", "x-amz-meta-direct-upload-check": "1"},
	})
	if err != nil {
		if strings.Contains(err.Error(), "credentials") {
			return Fail, "minting a presigned POST: no credentials", MissingCredentialsFix
		}
		return Fail, "minting a presigned POST: " + err.Error(), "fix the profile's bucket settings"
	}
	status, body, err := postForm(ctx, post, data)
	if err != nil {
		return Fail, "posting a test upload to " + post.URL + ": " + rootCause(err),
			"the form URL must be reachable by Caddy and browsers: fix endpoint / path_style"
	}
	if status/100 != 2 {
		code, msg := xmlError(body)
		detail := fmt.Sprintf("the store refused a test upload with the profile's presigned POST (HTTP %d %s: %s)", status, code, msg)
		switch code {
		case "SignatureDoesNotMatch", "InvalidAccessKeyId":
			return Fail, detail, "fix access_key_id/secret_access_key"
		case "AccessDenied":
			return Fail, detail, "grant the credentials s3:PutObject on the bucket"
		}
		return Fail, detail, "check that the S3 server supports presigned POST uploads (POST Object with a policy)"
	}
	defer func() { _ = b.Delete(context.WithoutCancel(ctx), key) }()
	obj, err := b.Stat(ctx, key)
	if err != nil {
		return Fail, "the test upload was accepted but cannot be read back: " + err.Error(), "grant the credentials s3:GetObject on the bucket"
	}
	if obj.Size != int64(len(data)) {
		return Fail, fmt.Sprintf("the test upload has %d bytes, want %d", obj.Size, len(data)), "check the S3 server's POST Object support"
	}
	if err := b.Delete(ctx, key); err != nil {
		return Fail, "the test upload could not be deleted: " + err.Error(), "grant the credentials s3:DeleteObject on the bucket (rejected uploads are deleted)"
	}
	return OK, fmt.Sprintf("a presigned POST to %s was accepted, read back (HEAD) and deleted", post.URL), ""
}

func postForm(ctx context.Context, post bucket.Post, data []byte) (int, []byte, error) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	keys := make([]string, 0, len(post.Fields))
	for k := range post.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := w.WriteField(k, post.Fields[k]); err != nil {
			return 0, nil, err
		}
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="file"; filename="check.txt"`)
	h.Set("Content-Type", post.Fields["Content-Type"])
	part, err := w.CreatePart(h)
	if err != nil {
		return 0, nil, err
	}
	_, _ = part.Write(data)
	_ = w.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, post.URL, &body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b, nil
}

func xmlError(body []byte) (string, string) {
	var e struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	_ = xml.Unmarshal(body, &e)
	return e.Code, e.Message
}

// checkCORS reads the bucket's CORS rules and looks for one that lets the
// origin POST and exposes ETag.
func checkCORS(ctx context.Context, client *s3.Client, t Target) (Status, string, string) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	out, err := client.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: aws.String(t.Bucket.Bucket)})
	origin := t.Origin
	ruleFix := fmt.Sprintf("add a CORS rule to the bucket: AllowedOrigins [%q], AllowedMethods [POST PUT], AllowedHeaders [*], ExposeHeaders [ETag]", orStar(origin))
	if err != nil {
		code, status := S3Code(err)
		switch {
		case code == "NoSuchCORSConfiguration":
			return Fail, "the bucket has no CORS configuration: browsers on the site cannot post to it", ruleFix
		case code == "NotImplemented" || status == http.StatusNotImplemented || status == http.StatusMethodNotAllowed:
			return Warn, "cannot check: the S3 server does not implement GetBucketCors (" + orStatus(code, status) + ")",
				"make sure the server lets " + orStar(origin) + " POST and exposes ETag"
		}
		return Warn, "cannot check: reading the bucket's CORS failed (" + orStatus(code, status) + ")",
			"grant s3:GetBucketCORS to see the rules, or check them by hand: " + ruleFix
	}
	if origin == "" {
		for _, r := range out.CORSRules {
			if hasFold(r.ExposeHeaders, "ETag") {
				return Warn, "the site's origin is unknown, so which rule applies cannot be checked", "pass --origin https://your.site"
			}
		}
		return Warn, "the site's origin is unknown, and no rule exposes ETag", "pass --origin; " + ruleFix
	}
	for _, r := range out.CORSRules {
		if !originMatches(r.AllowedOrigins, origin) || !hasFold(r.AllowedMethods, "POST") {
			continue
		}
		src := ""
		if t.OriginSource != "" {
			src = " (from " + t.OriginSource + ")"
		}
		if !hasFold(r.ExposeHeaders, "ETag") {
			return Warn, "the bucket lets " + origin + src + " POST but does not expose ETag (multipart uploads need it)",
				"add ETag to the rule's ExposeHeaders"
		}
		return OK, "the bucket lets " + origin + src + " POST and exposes ETag", ""
	}
	return Fail, "no CORS rule of the bucket lets " + origin + " POST: browsers on the site cannot upload", ruleFix
}

func orStar(origin string) string {
	if origin == "" {
		return "https://your.site"
	}
	return origin
}

func hasFold(list []string, want string) bool {
	for _, s := range list {
		if strings.EqualFold(s, want) || s == "*" {
			return true
		}
	}
	return false
}

// originMatches applies S3's rule: exact, "*", or one "*" wildcard.
func originMatches(allowed []string, origin string) bool {
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(a, origin) {
			return true
		}
		if pre, suf, ok := strings.Cut(a, "*"); ok && strings.HasPrefix(origin, pre) && strings.HasSuffix(origin, suf) && len(origin) >= len(pre)+len(suf) {
			return true
		}
	}
	return false
}

// TestEventType is the type of the signed event the webhook check sends;
// receivers should answer it 2xx and do nothing.
const TestEventType = "direct_upload.test"

// checkWebhook posts a signed test event to the profile's webhook.
func checkWebhook(ctx context.Context, t Target) (Status, string, string) {
	ep := t.Webhook
	if ep == nil {
		return Warn, "no webhook configured: outcomes stay in the outbox only", "add a webhook block if the backend should hear about uploads"
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	id := "msg_check_" + hex.EncodeToString(rnd[:])
	now := time.Now().UTC()
	body, _ := json.Marshal(map[string]any{
		"type": TestEventType, "timestamp": now,
		"data": map[string]string{"profile": t.Profile, "message": "test event from caddy direct-upload check; answer 2xx and ignore it"},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return Fail, "webhook URL: " + err.Error(), "fix the webhook URL"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.HeaderID, id)
	req.Header.Set(webhook.HeaderTimestamp, fmt.Sprint(now.Unix()))
	req.Header.Set(webhook.HeaderSignature, webhook.Sign(ep.Secrets, id, now, body))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return Fail, "the webhook endpoint " + ep.URL + " does not answer: " + rootCause(err),
			"fix the webhook URL, or start the backend's receiver"
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch s := resp.StatusCode; {
	case s/100 == 2:
		return OK, fmt.Sprintf("%s accepted a signed %s event (HTTP %d)", ep.URL, TestEventType, s), ""
	case s == http.StatusUnauthorized || s == http.StatusForbidden || s == http.StatusBadRequest:
		return Fail, fmt.Sprintf("%s rejected a signed test event (HTTP %d): the receiver's secret is not this profile's", ep.URL, s),
			"give the receiver exactly the profile's webhook secret (the same WEBHOOK_SECRET value, whsec_ prefix included), and have it answer 2xx to unknown event types"
	case s == http.StatusNotFound || s == http.StatusMethodNotAllowed:
		return Fail, fmt.Sprintf("%s answered HTTP %d: no receiver there", ep.URL, s), "fix the webhook URL's path to the backend's receiver"
	case s/100 == 3:
		return Fail, fmt.Sprintf("%s redirects (HTTP %d); webhooks do not follow redirects", ep.URL, s), "use the final URL (https:// scheme?)"
	default:
		return Fail, fmt.Sprintf("%s answered HTTP %d to a signed test event", ep.URL, s), "check the backend's receiver logs"
	}
}

// NewSecret returns a fresh Standard Webhooks secret: "whsec_" and the
// base64 of 32 random bytes.
func NewSecret() (string, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", err
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(k[:]), nil
}
