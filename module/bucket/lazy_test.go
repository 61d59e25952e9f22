package bucket

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// metadataTrap is a local stand-in for EC2 instance metadata and the ECS
// credentials endpoint that counts the connections made to it.
func metadataTrap(t *testing.T) *atomic.Int64 {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no credentials here", http.StatusNotFound)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	// No credentials anywhere but the (trapped) network.
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_EC2_METADATA_DISABLED":              "false",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT":      srv.URL,
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     srv.URL + "/creds",
		"AWS_ACCESS_KEY_ID":                      "",
		"AWS_SECRET_ACCESS_KEY":                  "",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_PROFILE":                            "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_SHARED_CREDENTIALS_FILE":            filepath.Join(dir, "credentials"),
		"AWS_CONFIG_FILE":                        filepath.Join(dir, "config"),
	} {
		t.Setenv(k, v)
	}
	return &conns
}

// TestNewMakesNoNetworkCall: building a bucket without static keys (the
// default credential chain, instance metadata included) contacts nothing;
// the credentials resolve on first use, which the trap does see.
func TestNewMakesNoNetworkCall(t *testing.T) {
	conns := metadataTrap(t)
	b, err := New(context.Background(), Config{Bucket: "uploads", Region: "eu-west-3", Endpoint: "http://127.0.0.1:1", PathStyle: true})
	if err != nil {
		t.Fatalf("New without static keys: %v", err)
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("New made %d connections to the credentials endpoints", n)
	}
	if b.ObjectURL("a/b.png") != "http://127.0.0.1:1/uploads/a/b.png" {
		t.Fatalf("object URL %q", b.ObjectURL("a/b.png"))
	}
	// First use resolves credentials: the trap is live, so a connection
	// made during New above would have been counted.
	if _, err := b.PresignPost(context.Background(), Policy{Key: "k", ContentType: "image/png", MinSize: 1, MaxSize: 2, Expires: 60e9}); err == nil {
		t.Fatal("presigning without any credentials succeeded")
	}
	if conns.Load() == 0 {
		t.Fatal("first use did not reach the trapped credentials endpoint: the trap does not work")
	}
}
