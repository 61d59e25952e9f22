package integration

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Promotion through the real Caddy binary and versitygw: grants name a
// staging key only; the verified object is copied to its final key.

func objectBytes(t testing.TB, key string) []byte {
	t.Helper()
	out, err := s3srv.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("uploads"), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplayedPostNeverChangesFinalKey: a client keeps posting its
// still-valid form after completion, with other valid bytes and with
// HTML; every POST is accepted by the store, lands under staging/, and
// the final object keeps the verified bytes.
func TestReplayedPostNeverChangesFinalKey(t *testing.T) {
	alice := login(t, "alice")
	img := pngFile(t)
	g := grant(t, alice, map[string]any{"content_type": "image/png"})
	final, staging := g.str("key"), g.fields()["key"]
	if !strings.HasPrefix(staging, "staging/") || staging != "staging/"+final || g.str("staging_key") != staging {
		t.Fatalf("grant: %s", g.Raw)
	}
	if status, body := uploadForm(t, g, "image/png", img); status != 201 {
		t.Fatalf("upload: %d %s", status, body)
	}
	done := call(t, "POST", exampleURL+"/uploads/"+g.str("id")+"/complete", nil, alice...)
	if done.Status != 200 || done.str("status") != "completed" || done.str("key") != final {
		t.Fatalf("complete: %d %s", done.Status, done.Raw)
	}
	if !bytes.Equal(objectBytes(t, final), img) {
		t.Fatal("after promotion: final is not the uploaded bytes")
	}
	stagingGone(t, staging)
	other := append(pngFile(t), "trailing bytes of another picture"...)
	for i, replay := range [][]byte{other, []byte("<html><script>alert(1)</script></html>"), other} {
		if status, body := uploadForm(t, g, "image/png", replay); status != 201 {
			t.Fatalf("replay %d: the store refused it (%d %s); the attack needs it accepted", i, status, body)
		}
		if !bytes.Equal(objectBytes(t, final), img) {
			t.Fatalf("replay %d changed the final object", i)
		}
		if !bytes.Equal(objectBytes(t, staging), replay) {
			t.Fatalf("replay %d did not land at the staging key", i)
		}
		again := call(t, "POST", exampleURL+"/uploads/"+g.str("id")+"/complete", nil, alice...)
		if again.Status != 200 || again.str("etag") != done.str("etag") || again.str("key") != final {
			t.Fatalf("complete after replay %d: %d %s", i, again.Status, again.Raw)
		}
	}
}

// TestSlowUploadStartedBeforeExpiry: a replay that starts just before
// the policy expires and dribbles its bytes at a few KiB/s. Whether the
// store accepts it or not, the final object never changes, and what
// lands at the staging key is deleted by the re-check.
func TestSlowUploadStartedBeforeExpiry(t *testing.T) {
	rc := newHookReceiver(t)
	h := newHooksWith(t, rc.srv.URL, lifeCaddyfile) // expires 2s, max_size 64KiB
	img := pngFile(t)
	g := granted(t, h)
	uploadForm(t, g, "image/png", img)
	if r := call(t, "POST", h.url+"/"+g.str("id")+"/complete", nil, carol...); r.Status != 200 || r.str("key") != g.str("key") {
		t.Fatalf("complete: %d %s", r.Status, r.Raw)
	}
	exp, err := time.Parse(time.RFC3339Nano, g.str("expires_at"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(exp.Add(-500 * time.Millisecond))) // the attack's timing, not a sync
	slow := append(pngFile(t), bytes.Repeat([]byte("x"), 12<<10)...)
	status, body := slowPost(t, g.str("url"), g.fields(), "image/png", slow, 4<<10)
	t.Logf("slow upload started before expiry: versitygw answered %d %.200s", status, body)
	if !bytes.Equal(objectBytes(t, g.str("key")), img) {
		t.Fatal("the slow upload changed the final object")
	}
	waitFor(t, "the re-check to clean the staging key", 15*time.Second, func() bool {
		return !objectExists(t, g.str("staging_key"))
	})
	if !bytes.Equal(objectBytes(t, g.str("key")), img) {
		t.Fatal("the final object changed")
	}
	if got := eventsOf(rc, g.str("id")); len(got) != 1 || got[0] != "upload.completed" {
		t.Fatalf("events: %v", got)
	}
}

// slowPost posts a form (with its Content-Length, as S3 wants) whose
// bytes are sent at rate bytes per second.
func slowPost(t *testing.T, url string, fields map[string]string, ct string, data []byte, rate int) (int, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		mw.WriteField(k, fields[k])
	}
	hd := make(textproto.MIMEHeader)
	hd.Set("Content-Disposition", `form-data; name="file"; filename="slow"`)
	hd.Set("Content-Type", ct)
	part, err := mw.CreatePart(hd)
	if err != nil {
		t.Fatal(err)
	}
	part.Write(data)
	mw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", url, &throttled{r: bytes.NewReader(body.Bytes()), chunk: rate / 10})
	req.ContentLength = int64(body.Len())
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// throttled reads at most chunk bytes per 100ms.
type throttled struct {
	r     io.Reader
	chunk int
}

func (s *throttled) Read(p []byte) (int, error) {
	time.Sleep(100 * time.Millisecond) // the rate limit itself
	return s.r.Read(p[:min(len(p), s.chunk)])
}

// stagingGone waits (bounded) for a promoted upload's staging object to
// be deleted: complete answers first and deletes it just after.
func stagingGone(t *testing.T, key string) {
	t.Helper()
	waitFor(t, "the staging object's deletion after complete", 15*time.Second, func() bool {
		return !objectExists(t, key)
	})
}
