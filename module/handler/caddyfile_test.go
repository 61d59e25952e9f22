package handler

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	_ "github.com/caddy-direct-upload/caddy-direct-upload/module/app"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`direct_upload {
		profile avatars
		base_path /avatars
		bucket my-bucket
		region eu-west-3
		endpoint http://127.0.0.1:7070
		path_style
		access_key_id {env.AK}
		secret_access_key {env.SK}
		key avatars/{identity}/{id}{ext}
		allowed_types image/png image/jpeg
		allowed_types image/webp
		max_size 2MiB
		expires 90s
		identity {http.request.header.X-User-Id}
		max_metadata 1KiB
		content_disposition attachment
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := Handler{
		Profile: "avatars", BasePath: "/avatars", Bucket: "my-bucket", Region: "eu-west-3",
		Endpoint: "http://127.0.0.1:7070", PathStyle: true, AccessKeyID: "{env.AK}", SecretAccessKey: "{env.SK}",
		Key: "avatars/{identity}/{id}{ext}", AllowedTypes: []string{"image/png", "image/jpeg", "image/webp"},
		MaxSize: 2 << 20, Expires: caddy.Duration(90 * time.Second), Identity: "{http.request.header.X-User-Id}",
		MaxMetadata: 1024, ContentDisposition: "attachment",
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got  %+v\nwant %+v", h, want)
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for _, src := range []string{
		"direct_upload extra-arg",
		"direct_upload {\n unknown_thing 1\n}",
		"direct_upload {\n bucket\n}",
		"direct_upload {\n bucket a b\n}",
		"direct_upload {\n max_size lots\n}",
		"direct_upload {\n expires soon\n}",
		"direct_upload {\n path_style yes\n}",
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src)); err == nil {
			t.Errorf("accepted: %q", src)
		}
	}
}

// TestAdaptGlobalOptionAndDirective adapts a whole Caddyfile: the global
// option configures the app, and the directive lands before reverse_proxy.
func TestAdaptGlobalOptionAndDirective(t *testing.T) {
	src := `{
	direct_upload {
		storage /var/lib/uploads
	}
}
:8080 {
	reverse_proxy 127.0.0.1:9000
	direct_upload {
		bucket b
	}
}`
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, warnings, err := adapter.Adapt([]byte(src), nil)
	if err != nil {
		t.Fatal(err, warnings)
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if string(cfg.Apps["direct_upload"]) != `{"storage":"/var/lib/uploads"}` {
		t.Errorf("app config = %s", cfg.Apps["direct_upload"])
	}
	js := string(cfg.Apps["http"])
	du, rp := strings.Index(js, `"handler":"direct_upload"`), strings.Index(js, `"handler":"reverse_proxy"`)
	if du < 0 || rp < 0 || du > rp {
		t.Errorf("direct_upload must come before reverse_proxy: %s", js)
	}
}

// TestAppendGrantMatchesJSON: the hand-written grant answer is what
// encoding/json writes.
func TestAppendGrantMatchesJSON(t *testing.T) {
	g := grantView{ID: "01abc", Method: "POST", URL: "http://127.0.0.1:7070/uploads", Key: "k/01abc.png", Bucket: "uploads",
		ExpiresAt: time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.UTC), MaxSize: 10 << 20,
		Fields: map[string]string{"key": "k/01abc.png", "policy": "eyJ+/=", "Content-Disposition": `attachment; filename="<é>"`, "x": "a&b"}}
	var want strings.Builder
	if err := json.NewEncoder(&want).Encode(g); err != nil {
		t.Fatal(err)
	}
	if got := string(appendGrant(nil, g)); got != want.String() {
		t.Fatalf("got  %s\nwant %s", got, want.String())
	}
}
