package receivers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const (
	startTimeout = 60 * time.Second // building the Go receiver included
	printTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
)

var listeningRE = regexp.MustCompile(`listening on http://(127\.0\.0\.1:[0-9]+)`)

// receiverSpec says how to start one receiver; start returns the command,
// not yet started, that serves on a free port.
type receiverSpec struct {
	name  string
	start func(t *testing.T) *exec.Cmd
}

var receiverSpecs = []receiverSpec{
	{"go", func(t *testing.T) *exec.Cmd {
		goBin := lookPath(t, "go", "the Go toolchain")
		bin := filepath.Join(t.TempDir(), "receiver")
		build := exec.Command(goBin, "build", "-o", bin, "./go")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build ./go: %v\n%s", err, out)
		}
		return exec.Command(bin, "-addr", "127.0.0.1:0")
	}},
	{"node", func(t *testing.T) *exec.Cmd {
		nodeBin := lookPath(t, "node", "Node.js 20 or later")
		if _, err := os.Stat(filepath.Join("node", "node_modules", "standardwebhooks", "package.json")); err != nil {
			t.Fatalf("examples/receivers/node/node_modules is missing or incomplete (%v): "+
				"run `npm ci --prefix examples/receivers/node` from the repository root first", err)
		}
		cmd := exec.Command(nodeBin, "server.mjs", "--port", "0")
		cmd.Dir = "node"
		return cmd
	}},
	{"python", func(t *testing.T) *exec.Cmd {
		pyBin := lookPath(t, "python3", "Python 3")
		cmd := exec.Command(pyBin, "-u", "receiver.py", "--port", "0")
		cmd.Dir = "python"
		return cmd
	}},
}

func lookPath(t *testing.T, name, what string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s (%s) is needed to run this receiver: %v", name, what, err)
	}
	return p
}

// newSecret returns a random "whsec_" secret.
func newSecret(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

// sign signs with the Standard Webhooks Go library, independently of the
// plugin's own signing code.
func sign(t *testing.T, secret, id string, ts time.Time, body []byte) string {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	sig, err := wh.Sign(id, ts, body)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return sig
}

// eventBody is a webhook body shaped like the plugin's.
func eventBody(typ, intentID, status, reason string) []byte {
	data := map[string]any{
		"id": intentID, "profile": "images", "status": status, "bucket": "uploads",
		"key":  "images/2026/11/28/" + intentID + ".png",
		"size": 52311, "content_type": "image/png", "etag": "ee76702403cd15dbc71587365494cbe5",
		"filename": "cat.png", "metadata": map[string]string{"album": "holidays"}, "identity": "alice",
		"created_at": "2026-11-28T12:01:00Z", "expires_at": "2026-11-28T12:16:00Z", "updated_at": "2026-11-28T12:01:24Z",
	}
	if reason != "" {
		data["reason"] = reason
	}
	b, err := json.Marshal(map[string]any{"type": typ, "timestamp": "2026-11-28T12:01:24.688Z", "data": data})
	if err != nil {
		panic(err)
	}
	return b
}

// printed is one line a receiver writes to stdout for a new event.
type printed struct {
	WebhookID string `json:"webhook_id"`
	Type      string `json:"type"`
	IntentID  string `json:"intent_id"`
	Status    string `json:"status"`
}

// lineBuffer collects what a process writes, line by line.
type lineBuffer struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.partial = append(b.partial, p...)
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		b.lines = append(b.lines, strings.TrimRight(string(b.partial[:i]), "\r"))
		b.partial = b.partial[i+1:]
	}
	return len(p), nil
}

// linesFrom returns the complete lines from index n on.
func (b *lineBuffer) linesFrom(n int) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n >= len(b.lines) {
		return nil
	}
	return append([]string(nil), b.lines[n:]...)
}

func (b *lineBuffer) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.lines)
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n") + "\n" + string(b.partial)
}

// runningReceiver is a started receiver process.
type runningReceiver struct {
	url    string // http://127.0.0.1:PORT
	stdout *lineBuffer
	stderr *lineBuffer
	exited chan struct{}
}

// startReceiver starts cmd with secret (none if empty) and the extra
// environment, waits until it serves, and stops it when the test ends.
func startReceiver(t *testing.T, cmd *exec.Cmd, secret string, extraEnv ...string) *runningReceiver {
	t.Helper()
	rr := &runningReceiver{stdout: &lineBuffer{}, stderr: &lineBuffer{}, exited: make(chan struct{})}
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k == "WEBHOOK_SECRET" || k == "WEBHOOK_PUBLIC_KEY" || k == "PORT" || k == "RECEIVER_ADDR" {
			continue
		}
		env = append(env, kv)
	}
	if secret != "" {
		env = append(env, "WEBHOOK_SECRET="+secret)
	}
	cmd.Env = append(env, extraEnv...)
	cmd.Stdout = rr.stdout
	cmd.Stderr = rr.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd, err)
	}
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(rr.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-rr.exited:
		default:
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-rr.exited:
			case <-time.After(stopTimeout):
				t.Errorf("%s did not stop within %s of SIGINT; killing it", cmd, stopTimeout)
				cmd.Process.Kill()
				<-rr.exited
			}
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", cmd, rr.stderr)
		}
	})

	deadline := time.Now().Add(startTimeout)
	for rr.url == "" {
		for _, line := range rr.stderr.linesFrom(0) {
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				rr.url = "http://" + m[1]
				break
			}
		}
		if rr.url != "" {
			break
		}
		select {
		case <-rr.exited:
			t.Fatalf("%s exited before listening: %v\nstderr:\n%s", cmd, waitErr, rr.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %s\nstderr:\n%s", cmd, "listening on http://…", startTimeout, rr.stderr)
		}
	}

	res, err := http.Get(rr.url + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: status %d, want 200", res.StatusCode)
	}
	return rr
}

// delivery is one POST to the webhook endpoint.
type delivery struct {
	body    []byte
	headers map[string]string // a name missing here is not sent
}

func (rr *runningReceiver) post(t *testing.T, d delivery) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rr.url+"/webhooks/uploads", bytes.NewReader(d.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range d.headers {
		req.Header.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("POST /webhooks/uploads: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return res.StatusCode, body, res.Header
}

// waitPrinted waits until stdout has a line for webhookID at or after
// line from, and returns the lines before it and the index after it.
func (rr *runningReceiver) waitPrinted(t *testing.T, from int, webhookID string) (before []printed, next int) {
	t.Helper()
	deadline := time.Now().Add(printTimeout)
	for {
		lines := rr.stdout.linesFrom(from)
		var seen []printed
		for i, line := range lines {
			var p printed
			if err := json.Unmarshal([]byte(line), &p); err != nil {
				t.Fatalf("stdout line %q is not a JSON event: %v", line, err)
			}
			if p.WebhookID == webhookID {
				return seen, from + i + 1
			}
			seen = append(seen, p)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stdout line for %s within %s; stdout so far:\n%s", webhookID, printTimeout, rr.stdout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReceivers(t *testing.T) {
	for _, spec := range receiverSpecs {
		t.Run(spec.name, func(t *testing.T) {
			t.Parallel()
			testReceiver(t, spec)
		})
	}
}

func testReceiver(t *testing.T, spec receiverSpec) {
	secret, otherSecret := newSecret(t), newSecret(t)
	rr := startReceiver(t, spec.start(t), secret)

	// signed returns a delivery of body as id, signed at ts with secrets
	// (one signature each, in order).
	signed := func(id string, ts time.Time, body []byte, secrets ...string) delivery {
		sigs := make([]string, len(secrets))
		for i, s := range secrets {
			sigs[i] = sign(t, s, id, ts, body)
		}
		return delivery{body: body, headers: map[string]string{
			"webhook-id":        id,
			"webhook-timestamp": strconv.FormatInt(ts.Unix(), 10),
			"webhook-signature": strings.Join(sigs, " "),
		}}
	}
	without := func(d delivery, names ...string) delivery {
		h := make(map[string]string, len(d.headers))
		for k, v := range d.headers {
			h[k] = v
		}
		for _, n := range names {
			delete(h, n)
		}
		return delivery{body: d.body, headers: h}
	}

	completed := eventBody("upload.completed", "01m8h0g1saxzbz711pavtr43xf", "completed", "")
	rejected := eventBody("upload.rejected", "01m8h0g1saxzbz711pavtr43xg", "rejected", "content_mismatch")
	completedEvent := printed{"evt_valid", "upload.completed", "01m8h0g1saxzbz711pavtr43xf", "completed"}

	tests := []struct {
		name string
		// make builds the request when the case runs, so timestamps are fresh.
		make   func(now time.Time) delivery
		accept bool     // want 2xx; otherwise want a refusal, 400 or 401
		print  *printed // the line expected on stdout, nil for none
	}{
		{
			name:   "valid",
			make:   func(now time.Time) delivery { return signed("evt_valid", now, completed, secret) },
			accept: true,
			print:  &completedEvent,
		},
		{
			// A retry: same webhook-id and body, fresh timestamp.
			name:   "same webhook-id again is not processed twice",
			make:   func(now time.Time) delivery { return signed("evt_valid", now.Add(time.Second), completed, secret) },
			accept: true,
		},
		{
			name: "tampered body",
			make: func(now time.Time) delivery {
				d := signed("evt_tampered", now, completed, secret)
				d.body = bytes.Replace(d.body, []byte(`"alice"`), []byte(`"mallory"`), 1)
				if bytes.Equal(d.body, completed) {
					panic("tampering changed nothing")
				}
				return d
			},
		},
		{
			// The forged delivery above must not have been remembered.
			name:   "valid after a forged delivery with the same webhook-id",
			make:   func(now time.Time) delivery { return signed("evt_tampered", now, completed, secret) },
			accept: true,
			print:  &printed{"evt_tampered", "upload.completed", "01m8h0g1saxzbz711pavtr43xf", "completed"},
		},
		{
			name: "wrong secret",
			make: func(now time.Time) delivery { return signed("evt_wrong_secret", now, completed, otherSecret) },
		},
		{
			name: "stale timestamp (10 minutes old)",
			make: func(now time.Time) delivery {
				return signed("evt_stale", now.Add(-10*time.Minute), completed, secret)
			},
		},
		{
			name: "future timestamp (10 minutes ahead)",
			make: func(now time.Time) delivery {
				return signed("evt_future", now.Add(10*time.Minute), completed, secret)
			},
		},
		{
			name: "timestamp 4 minutes old is within tolerance",
			make: func(now time.Time) delivery {
				return signed("evt_late", now.Add(-4*time.Minute), completed, secret)
			},
			accept: true,
			print:  &printed{"evt_late", "upload.completed", "01m8h0g1saxzbz711pavtr43xf", "completed"},
		},
		{
			name:   "rotation: only the second of two signatures matches",
			make:   func(now time.Time) delivery { return signed("evt_rotation", now, rejected, otherSecret, secret) },
			accept: true,
			print:  &printed{"evt_rotation", "upload.rejected", "01m8h0g1saxzbz711pavtr43xg", "rejected"},
		},
		{
			name: "missing all webhook headers",
			make: func(now time.Time) delivery {
				return without(signed("evt_no_headers", now, completed, secret),
					"webhook-id", "webhook-timestamp", "webhook-signature")
			},
		},
		{
			name: "missing webhook-id",
			make: func(now time.Time) delivery {
				return without(signed("evt_no_id", now, completed, secret), "webhook-id")
			},
		},
		{
			name: "missing webhook-timestamp",
			make: func(now time.Time) delivery {
				return without(signed("evt_no_ts", now, completed, secret), "webhook-timestamp")
			},
		},
		{
			name: "missing webhook-signature",
			make: func(now time.Time) delivery {
				return without(signed("evt_no_sig", now, completed, secret), "webhook-signature")
			},
		},
	}

	stdoutAt := 0 // stdout lines before this index have been checked
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, header := rr.post(t, tc.make(time.Now()))
			if tc.accept {
				if status < 200 || status > 299 {
					t.Errorf("status %d, want 2xx; body: %s", status, body)
				} else {
					checkOKAnswer(t, body, header)
				}
			} else if status != http.StatusBadRequest && status != http.StatusUnauthorized {
				// 410 in particular would tell the sender to give up on the endpoint.
				t.Errorf("status %d, want 400 or 401; body: %s", status, body)
			}

			// A valid event sent after this case marks the end of what the
			// case may have printed: a receiver writes each line before it
			// answers, so anything the case printed comes before the marker.
			marker := fmt.Sprintf("evt_marker_%d", i)
			if st, b, _ := rr.post(t, signed(marker, time.Now(), completed, secret)); st != http.StatusOK {
				t.Fatalf("marker event: status %d; body: %s", st, b)
			}
			got, next := rr.waitPrinted(t, stdoutAt, marker)
			stdoutAt = next
			var want []printed
			if tc.print != nil {
				want = []printed{*tc.print}
			}
			if !slices.Equal(got, want) {
				t.Errorf("printed %+v, want %+v", got, want)
			}
		})
	}

	// Every line was accounted for; the receiver printed nothing else.
	if extra := rr.stdout.linesFrom(stdoutAt); len(extra) > 0 {
		t.Errorf("unexpected stdout lines after the last case: %q", extra)
	}
	if n := rr.stdout.count(); n != stdoutAt {
		t.Errorf("stdout has %d lines, %d accounted for", n, stdoutAt)
	}
}

// checkOKAnswer checks a 2xx answer is the small JSON object the plugin may
// show the user: {"ok":true,"message":"…"}.
func checkOKAnswer(t *testing.T, body []byte, header http.Header) {
	t.Helper()
	if mt, _, _ := mime.ParseMediaType(header.Get("Content-Type")); mt != "application/json" {
		t.Errorf("Content-Type %q, want application/json", header.Get("Content-Type"))
	}
	var answer struct {
		OK      *bool   `json:"ok"`
		Message *string `json:"message"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Errorf("answer %q is not a JSON object: %v", body, err)
		return
	}
	if answer.OK == nil || !*answer.OK {
		t.Errorf("answer %s: want \"ok\": true", body)
	}
	if answer.Message == nil || *answer.Message == "" {
		t.Errorf("answer %s: want a non-empty \"message\"", body)
	}
	if len(body) > 16<<10 {
		t.Errorf("answer is %d bytes; keep it small", len(body))
	}
}

// TestLineBuffer checks the helper that splits process output into lines.
func TestLineBuffer(t *testing.T) {
	var b lineBuffer
	for _, chunk := range []string{"a", "b\nc", "\r\n", "\nd"} {
		if _, err := b.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := b.linesFrom(0), []string{"ab", "c", ""}; !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
	if got := b.linesFrom(5); got != nil {
		t.Errorf("linesFrom past the end: %q, want nil", got)
	}
}
