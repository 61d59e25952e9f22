package doctor

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func apiErr(code string, status int) error {
	return fmt.Errorf("operation error S3: GetObject: %w", &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      &smithy.GenericAPIError{Code: code, Message: "bucket secret-bucket-name at 10.0.0.7"},
	}})
}

// TestExplainStorage: each kind of S3 failure gets its code, the fix for
// the operator, and a client hint that names nothing internal.
func TestExplainStorage(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for _, tc := range []struct {
		name   string
		err    error
		code   string
		fix    string
		client string
	}{
		{"missing bucket", apiErr("NoSuchBucket", 404), "NoSuchBucket", "the bucket does not exist: create it", ClientMisconfigured},
		{"wrong secret", apiErr("SignatureDoesNotMatch", 403), "SignatureDoesNotMatch", "fix secret_access_key (or AWS_SECRET_ACCESS_KEY)", ClientMisconfigured},
		{"unknown key", apiErr("InvalidAccessKeyId", 403), "InvalidAccessKeyId", "fix access_key_id (or AWS_ACCESS_KEY_ID)", ClientMisconfigured},
		{"unknown key (versitygw)", apiErr("XAdminUserNotFound", 404), "XAdminUserNotFound", "fix access_key_id", ClientMisconfigured},
		{"denied", apiErr("AccessDenied", 403), "AccessDenied", "grant the credentials s3:GetObject", ClientMisconfigured},
		{"forbidden HEAD", apiErr("", 403), "", "access denied", ClientMisconfigured},
		{"region", apiErr("PermanentRedirect", 301), "PermanentRedirect", "set region", ClientMisconfigured},
		{"no credentials", fmt.Errorf("presigning POST: retrieving credentials: %w", errors.New("failed to refresh cached credentials, no EC2 IMDS role found")),
			"", "no AWS credentials: set access_key_id and secret_access_key in the direct_upload block", ClientMisconfigured},
		{"no credentials names variables", fmt.Errorf("retrieving credentials: x"), "", "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", ClientMisconfigured},
		{"unreachable", fmt.Errorf("operation error S3: GetObject: %w", dial), "", "the S3 endpoint did not answer: check endpoint", ClientUnreachable},
		{"server error", apiErr("InternalError", 500), "InternalError", "the S3 server failed", ClientTransient},
		{"slow down", apiErr("SlowDown", 503), "SlowDown", "the S3 server failed", ClientTransient},
		{"other", apiErr("Weird", 409), "Weird", "unexpected S3 error", ClientTransient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := ExplainStorage(tc.err)
			if h.Code != tc.code || !strings.Contains(h.Fix, tc.fix) || h.Client != tc.client {
				t.Fatalf("got %+v\nwant code %q, fix ~ %q, client %q", h, tc.code, tc.fix, tc.client)
			}
			for _, leak := range []string{"secret-bucket-name", "10.0.0.7", "127.0.0.1"} {
				if strings.Contains(h.Client, leak) {
					t.Errorf("client hint leaks %s", leak)
				}
			}
		})
	}
}
