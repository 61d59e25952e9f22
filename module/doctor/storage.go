package doctor

import (
	"errors"
	"net"
	"net/http"
	"strings"
)

// StorageHint is what an S3 failure tells, split between the operator (the
// log: the code and what to fix, which may name the bucket's settings) and
// the client (a hint safe to show: no bucket, endpoint or key names).
type StorageHint struct {
	Code   string // the S3 error code, "" if none
	Status int    // the HTTP status, 0 if no answer
	Fix    string // for the operator's log
	Client string // for the client's message
}

// The client's hints, by kind of failure.
const (
	ClientMisconfigured = "the object storage refused the server's request: a configuration problem on the server side that its operator must fix (retrying will not help until then)"
	ClientUnreachable   = "the object storage cannot be reached; try again later"
	ClientTransient     = "the object storage failed; try again"
)

// ExplainStorage classifies a failed S3 call of a running profile.
func ExplainStorage(err error) StorageHint {
	code, status := S3Code(err)
	h := StorageHint{Code: code, Status: status, Client: ClientMisconfigured}
	switch {
	case code == "" && status == 0 && isCredentialsErr(err):
		h.Fix = "no AWS credentials: " + MissingCredentialsFix
	case code == "NoSuchBucket":
		h.Fix = "the bucket does not exist: create it, or fix bucket/endpoint/region in the direct_upload block (caddy direct-upload check tells which)"
	case code == "SignatureDoesNotMatch":
		h.Fix = "the secret access key is wrong: fix secret_access_key (or AWS_SECRET_ACCESS_KEY)"
	case code == "InvalidAccessKeyId" || code == "XAdminUserNotFound":
		h.Fix = "the store does not know the access key: fix access_key_id (or AWS_ACCESS_KEY_ID) or the endpoint"
	case code == "AccessDenied" || status == http.StatusForbidden:
		h.Fix = "access denied: grant the credentials s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket"
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || status == http.StatusMovedPermanently:
		h.Fix = "the bucket is in another region: set region to the bucket's"
	case code == "" && status == 0:
		h.Fix = "the S3 endpoint did not answer: check endpoint and that the S3 server is running and reachable"
		h.Client = ClientUnreachable
	case status >= 500 || code == "SlowDown" || code == "RequestTimeout":
		h.Fix = "the S3 server failed; transient if rare, otherwise look at the S3 server"
		h.Client = ClientTransient
	default:
		h.Fix = "unexpected S3 error; see s3_code"
		h.Client = ClientTransient
	}
	return h
}

// isCredentialsErr tells a failure to find credentials (no request was
// sent) from a network failure.
func isCredentialsErr(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "retrieving credentials") || strings.Contains(s, "refresh cached credentials") ||
		strings.Contains(s, "no valid credential") || strings.Contains(s, "static credentials are empty")
}
