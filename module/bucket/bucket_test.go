package bucket

import (
	"context"

	"encoding/base64"
	"encoding/json"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"
)

func newTestBucket(t *testing.T) *Bucket {
	t.Helper()
	b, err := New(context.Background(), Config{
		Bucket: "uploads", Region: "eu-west-3", Endpoint: "http://127.0.0.1:1", PathStyle: true,
		AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPresignPostPinsEverything decodes a minted policy and checks every
// condition: exact key, exact type, size range, the extra fields, the
// credential scope, and an expiry as short as asked.
func TestPresignPostPinsEverything(t *testing.T) {
	b := newTestBucket(t)
	before := time.Now()
	post, err := b.PresignPost(context.Background(), Policy{
		Key: "avatars/2026/01/02/abc.png", ContentType: "image/png", MinSize: 1, MaxSize: 4096,
		Expires: 90 * time.Second,
		Fields:  map[string]string{"success_action_status": "201", "x-amz-meta-intent-id": "abc"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if post.URL != "http://127.0.0.1:1/uploads" {
		t.Errorf("URL = %q", post.URL)
	}
	for k, want := range map[string]string{
		"key": "avatars/2026/01/02/abc.png", "Content-Type": "image/png", "success_action_status": "201",
		"x-amz-meta-intent-id": "abc", "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
	} {
		if post.Fields[k] != want {
			t.Errorf("field %s = %q, want %q", k, post.Fields[k], want)
		}
	}
	if !strings.HasPrefix(post.Fields["X-Amz-Credential"], "AKIDEXAMPLE/") || !strings.HasSuffix(post.Fields["X-Amz-Credential"], "/eu-west-3/s3/aws4_request") {
		t.Errorf("credential = %q", post.Fields["X-Amz-Credential"])
	}
	if len(post.Fields["X-Amz-Signature"]) != 64 {
		t.Errorf("signature = %q", post.Fields["X-Amz-Signature"])
	}
	raw, err := base64.StdEncoding.DecodeString(post.Fields["policy"])
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Expiration time.Time `json:"expiration"`
		Conditions []any     `json:"conditions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if d := doc.Expiration.Sub(before); d < 89*time.Second || d > 92*time.Second {
		t.Errorf("policy expires %v after minting, want 90s", d)
	}
	exact := map[string]string{}
	var arrays [][]any
	for _, c := range doc.Conditions {
		switch c := c.(type) {
		case map[string]any:
			for k, v := range c {
				exact[k] = v.(string)
			}
		case []any:
			arrays = append(arrays, c)
		default:
			t.Fatalf("unexpected condition %#v", c)
		}
	}
	wantExact := map[string]string{
		"bucket": "uploads", "key": "avatars/2026/01/02/abc.png", "success_action_status": "201",
		"x-amz-meta-intent-id": "abc", "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
		"X-Amz-Credential": post.Fields["X-Amz-Credential"], "X-Amz-Date": post.Fields["X-Amz-Date"],
	}
	if !reflect.DeepEqual(exact, wantExact) {
		t.Errorf("exact conditions = %v\nwant %v", exact, wantExact)
	}
	wantArrays := [][]any{{"eq", "$Content-Type", "image/png"}, {"content-length-range", 1.0, 4096.0}}
	if !reflect.DeepEqual(arrays, wantArrays) {
		t.Errorf("array conditions = %v, want %v", arrays, wantArrays)
	}
	// Every form field but the signature and the policy itself is pinned.
	for k := range post.Fields {
		if k == "policy" || k == "X-Amz-Signature" {
			continue
		}
		if _, ok := exact[k]; !ok && k != "Content-Type" {
			t.Errorf("form field %s has no condition", k)
		}
	}
	for _, c := range doc.Conditions {
		if a, ok := c.([]any); ok && a[0] == "starts-with" {
			t.Errorf("policy has a starts-with condition: %v", a)
		}
	}
}

func TestNewRefusesHalfCredentials(t *testing.T) {
	_, err := New(context.Background(), Config{Bucket: "b", Region: "us-east-1", AccessKeyID: "only-id"})
	if err == nil {
		t.Fatal("want an error for an access key without a secret")
	}
}

// TestSignerMatchesSDKByteForByte: the policy signed without the SDK's
// middleware is byte-identical to PresignPostObject's for the same inputs
// (with and without a session token, for path-style and virtual-hosted
// buckets).
func TestSignerMatchesSDKByteForByte(t *testing.T) {
	for _, cfg := range []Config{
		{Bucket: "uploads", Region: "eu-west-3", Endpoint: "http://127.0.0.1:1", PathStyle: true, AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"},
		{Bucket: "my-bucket", Region: "us-east-1", AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "s3cr3t/+=", SessionToken: "token<&>=="},
	} {
		b, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		pol := Policy{Key: "images/2026/01/02/01abc.png", ContentType: "image/png", MinSize: 1, MaxSize: 10 << 20,
			Fields: map[string]string{"Content-Disposition": `attachment; filename="<x>"`, "success_action_status": "201", "x-amz-meta-intent-id": "01abc"}}
		conds := conditions(pol)
		for i := 0; i < 3; i++ {
			out, err := b.presign.PresignPostObject(context.Background(), &s3.PutObjectInput{
				Bucket: aws.String(cfg.Bucket), Key: aws.String("images/2026/01/02/01abc.png"),
			}, func(o *s3.PresignPostOptions) {
				o.Expires = 5 * time.Minute
				o.Conditions = conds
			})
			if err != nil {
				t.Fatal(err)
			}
			at, err := time.Parse(amzDate, out.Values["X-Amz-Date"])
			if err != nil {
				t.Fatal(err)
			}
			b.signer.now = func() time.Time { return at }
			ours, err := b.signer.sign(context.Background(), pol, at.Add(5*time.Minute), 0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ours, out.Values) {
				t.Fatalf("fields differ from the SDK's:\nours %v\nsdk  %v", ours, out.Values)
			}
			if b.signer.url != out.URL {
				t.Fatalf("URL %q, SDK %q", b.signer.url, out.URL)
			}
		}
	}
}

// BenchmarkPresignPost compares the SDK's presigner with ours.
func BenchmarkPresignPost(b *testing.B) {
	bk, err := New(context.Background(), Config{Bucket: "uploads", Region: "us-east-1", Endpoint: "http://127.0.0.1:1", PathStyle: true, AccessKeyID: "AK", SecretAccessKey: "SK"})
	if err != nil {
		b.Fatal(err)
	}
	p := Policy{Key: "k/01abc.png", ContentType: "image/png", MinSize: 1, MaxSize: 100, Expires: time.Minute,
		Fields: map[string]string{"success_action_status": "201", "x-amz-meta-intent-id": "01abc"}}
	b.Run("sdk", func(b *testing.B) {
		signer := bk.signer
		bk.signer = nil
		defer func() { bk.signer = signer }()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := bk.PresignPost(context.Background(), p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := bk.PresignPost(context.Background(), p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestAppendPolicyMatchesJSON compares the hand-written encoder with
// encoding/json on awkward strings.
func TestAppendPolicyMatchesJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quo"te`, `back\slash`, "<html>&amp;", "tab\tnew\nline\x01", "é漢字", "\u2028\u2029", "bad\xffutf8", "emoji 😀"} {
		conds := []any{map[string]string{"k": s, "a": s}, []any{"eq", "$x", s}, []any{"content-length-range", int64(1), int64(42)}}
		got, err := appendPolicy(nil, conds, s)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(map[string]any{"conditions": conds, "expiration": s})
		if string(got) != string(want) {
			t.Errorf("%q:\n got %s\nwant %s", s, got, want)
		}
	}
}

// TestAppendJSONStringMatchesEncodingJSON: the one string quoter of the
// policy and of the grant answer writes what encoding/json writes.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "<script>&", "ctl\x01\n", "é☕", "bad\xff", "\u2028"} {
		want, _ := json.Marshal(s)
		if got := AppendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("%q: %s, want %s", s, got, want)
		}
	}
}

// TestSignsOffline: only a signer with static keys from the config says
// its presigns never wait; the default credential chain may fetch.
func TestSignsOffline(t *testing.T) {
	static, err := New(context.Background(), Config{Bucket: "b", Region: "us-east-1", Endpoint: "http://127.0.0.1:1", PathStyle: true, AccessKeyID: "AK", SecretAccessKey: "SK"})
	if err != nil {
		t.Fatal(err)
	}
	if !static.SignsOffline() {
		t.Error("static keys: SignsOffline = false")
	}
	chain, err := New(context.Background(), Config{Bucket: "b", Region: "us-east-1", Endpoint: "http://127.0.0.1:1", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if chain.SignsOffline() {
		t.Error("default credential chain: SignsOffline = true")
	}
	if NewWith("b", nil, nil).SignsOffline() {
		t.Error("SDK presigner: SignsOffline = true")
	}
}

// TestReleasedFieldsStartEmpty: a form's fields given back with
// ReleaseFields and reused by the next presign carry nothing of the
// earlier form: the next one is exactly what a fresh map would hold.
func TestReleasedFieldsStartEmpty(t *testing.T) {
	bk, err := New(context.Background(), Config{Bucket: "uploads", Region: "us-east-1", Endpoint: "http://127.0.0.1:1", PathStyle: true, AccessKeyID: "AK", SecretAccessKey: "SK"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	bk.signer.now = func() time.Time { return at }
	first := Policy{Key: "k/1.png", ContentType: "image/png", MinSize: 1, MaxSize: 100, Expiration: at.Add(time.Minute),
		Fields: map[string]string{"Content-Disposition": "attachment", "x-amz-checksum-sha256": "abc="}}
	second := Policy{Key: "k/2.png", ContentType: "image/png", MinSize: 1, MaxSize: 100, Expiration: at.Add(time.Minute),
		Fields: map[string]string{"success_action_status": "201"}}
	fresh, err := bk.PresignPost(context.Background(), second)
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(fresh.Fields)
	for range 3 {
		p, err := bk.PresignPost(context.Background(), first)
		if err != nil {
			t.Fatal(err)
		}
		ReleaseFields(p.Fields)
		got, err := bk.PresignPost(context.Background(), second)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got.Fields, want) {
			t.Fatalf("fields after a released form:\n got  %v\n want %v", got.Fields, want)
		}
		ReleaseFields(got.Fields)
	}
}

// BenchmarkAppendJSONString writes a policy-sized base64 string, as every
// grant's answer does.
func BenchmarkAppendJSONString(b *testing.B) {
	s := base64.StdEncoding.EncodeToString(make([]byte, 1000))
	buf := make([]byte, 0, 2048)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = AppendJSONString(buf[:0], s)
	}
}
