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

// TestCaddyfileErrorMessages: each mistake is named with its fix.
func TestCaddyfileErrorMessages(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"direct_upload {\n allowed_type image/png image/jpeg\n}", `unknown direct_upload subdirective "allowed_type" (did you mean "allowed_types"?); known: profile, base_path`},
		{"direct_upload {\n allowed_type image/png\n}", `unknown direct_upload subdirective "allowed_type" (did you mean "allowed_types"?)`},
		{"direct_upload {\n path_styel\n}", `unknown direct_upload subdirective "path_styel" (did you mean "path_style"?)`},
		{"direct_upload {\n unknown_thing 1\n}", `unknown direct_upload subdirective "unknown_thing"; known:`},
		{"direct_upload {\n max_size 10 MiB\n}", `max_size takes one size written without spaces: write 10MiB, not "10 MiB"`},
		{"direct_upload {\n max_metadata 4 KiB\n}", `max_metadata takes one size written without spaces: write 4KiB, not "4 KiB"`},
		{"direct_upload {\n max_size lots\n}", `max_size "lots": want a positive size such as 10MiB, 500KB or 1GiB`},
		{"direct_upload {\n max_size 0\n}", `max_size "0": want a positive size`},
		{"direct_upload {\n max_metadata 2MiB\n}", `max_metadata "2MiB": at most 16KiB`},
		{"direct_upload {\n max_metadata 17KiB\n}", `max_metadata "17KiB": at most 16KiB`},
		{"direct_upload {\n bucket\n}", `bucket needs a value (a {$VARIABLE} that is unset expands to nothing)`},
		{"direct_upload {\n bucket a b\n}", `bucket takes one value, got 2: "a b"`},
		{"direct_upload {\n path_style yes\n}", `path_style takes no value (got "yes")`},
		{"direct_upload {\n expires soon\n}", `expires "soon": want a duration such as 5m or 90s`},
		{"direct_upload extra-arg", `direct_upload takes no argument on its line (got "extra-arg")`},
		{"direct_upload {\n webhook\n}", `webhook needs the receiver's URL`},
		{"direct_upload {\n webhook http://b/h x\n}", `webhook takes one URL, then a { } block (got "x" after the URL)`},
		{"direct_upload {\n webhook http://b/h {\n secret\n }\n}", `webhook secret is empty: write secret {env.WEBHOOK_SECRET} and set WEBHOOK_SECRET (caddy direct-upload secret makes one)`},
		{"direct_upload {\n webhook http://b/h {\n secrets whsec_x\n }\n}", `unknown webhook option "secrets" (did you mean "secret"?); known: secret, signing_key, timeout, retry, wait`},
		{"direct_upload {\n webhook http://b/h {\n timeout 1s 2s\n }\n}", `webhook timeout takes one duration, got "1s 2s"`},
		{"direct_upload {\n webhook http://b/h {\n wait\n }\n}", `webhook wait needs a value`},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got  %v\n want %s", tc.src, err, tc.want)
		}
	}
}

// TestSizesWithUnits: sizes take units written without a space.
func TestSizesWithUnits(t *testing.T) {
	for src, want := range map[string]int64{"10MiB": 10 << 20, "500KB": 500_000, "1GiB": 1 << 30, "2048": 2048, "10mib": 10 << 20} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("direct_upload {\n max_size " + src + "\n}")); err != nil || h.MaxSize != want {
			t.Errorf("max_size %s = %d, %v; want %d", src, h.MaxSize, err, want)
		}
	}
}

// TestEmptyWebhookSecretNamesVariable: an unset variable behind
// {env.NAME} is reported as empty, naming the variable.
func TestEmptyWebhookSecretNamesVariable(t *testing.T) {
	t.Setenv("WEBHOOK_SECRET", "")
	for raw, want := range map[string]string{
		"{env.WEBHOOK_SECRET}": "webhook secret #1 is empty: {env.WEBHOOK_SECRET} expands to nothing: set WEBHOOK_SECRET to a whsec_ secret for Caddy's process (caddy direct-upload secret makes one)",
		"":                     "webhook secret #1 is empty: set it to a whsec_ secret (caddy direct-upload secret makes one)",
		"nope":                 "webhook secret #1: webhook secret must start with whsec_",
	} {
		w := &WebhookConfig{URL: "http://127.0.0.1:9/h", Secrets: []string{raw}}
		_, err := w.endpoint(caddy.NewReplacer())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("secret %q:\n got  %v\n want %s", raw, err, want)
		}
	}
}
