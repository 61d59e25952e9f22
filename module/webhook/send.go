package webhook

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// DefaultSchedule is the Standard Webhooks retry schedule: the delay before
// each attempt, the first one immediate.
var DefaultSchedule = []time.Duration{
	0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// Defaults of an endpoint.
const (
	DefaultTimeout = 15 * time.Second
	// MaxResponse is how much of an endpoint's answer is read; a JSON
	// answer this small or smaller is kept for the client's fast path.
	MaxResponse = 16 << 10
	// maxDrain is how much more of a long answer is read and dropped to
	// keep the connection for the next attempt; beyond it the connection
	// is closed.
	maxDrain = 256 << 10
	// maxRetryAfter caps what an endpoint can ask for with Retry-After.
	maxRetryAfter = 24 * time.Hour
)

// Endpoint is where one profile's events go.
type Endpoint struct {
	URL      string
	Secrets  []Secret
	Timeout  time.Duration
	Schedule []time.Duration
	// Ed25519Keys sign asymmetric (v1a) signatures, beside Secrets.
	Ed25519Keys []ed25519.PrivateKey
}

// Outcome classifies an attempt.
type Outcome int

// Attempt outcomes.
const (
	Delivered Outcome = iota // 2xx
	Retry                    // anything else that may pass later
	Gone                     // 410: the endpoint asks never to be called again
)

// Result is what one attempt found.
type Result struct {
	Outcome    Outcome
	Status     int
	Err        error
	RetryAfter time.Duration
	// JSON is the endpoint's answer when it was a 2xx JSON body of at most
	// MaxResponse bytes.
	JSON json.RawMessage
}

// Sender makes delivery attempts.
type Sender struct {
	Client *http.Client
	Now    func() time.Time
}

// NewSender returns a Sender whose client never follows redirects: a 3xx
// is a failed attempt, never a new destination.
func NewSender() *Sender {
	return &Sender{
		Client: &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				Proxy:               http.ProxyFromEnvironment,
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     90 * time.Second,
			},
		},
		Now: time.Now,
	}
}

// Send makes one signed attempt to deliver ev to ep.
func (s *Sender) Send(ctx context.Context, ep *Endpoint, ev *store.Event) Result {
	body, err := Body(ev)
	if err != nil {
		return Result{Outcome: Retry, Err: err}
	}
	timeout := ep.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return Result{Outcome: Retry, Err: err}
	}
	now := s.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "caddy-direct-upload")
	req.Header.Set(HeaderID, ev.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, ep.Signature(ev.ID, now, body))
	resp, err := s.Client.Do(req)
	if err != nil {
		// The URL may carry a token in its query: keep it out of the error
		// (logged, and shown by the admin API).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %v", timeout)
		}
		return Result{Outcome: Retry, Err: err}
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	// Drain what is left of a longer answer (up to maxDrain), so that the
	// connection is reused rather than closed; Close discards the rest.
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()
	r := Result{Status: resp.StatusCode}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		r.Outcome = Delivered
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mt == "application/json" && len(answer) <= MaxResponse && json.Valid(answer) {
			var buf bytes.Buffer
			if json.Compact(&buf, answer) == nil {
				r.JSON = buf.Bytes()
			}
		}
	case resp.StatusCode == http.StatusGone:
		r.Outcome = Gone
	default:
		r.Outcome = Retry
		r.Err = fmt.Errorf("endpoint answered %d", resp.StatusCode)
		r.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
	}
	return r
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// NextDelay returns how long to wait before the next attempt after
// `attempts` failed ones, with ±10 % jitter so retries of many events
// spread out, and never less than the endpoint's Retry-After. ok is false
// when the schedule is exhausted.
func NextDelay(schedule []time.Duration, attempts int, retryAfter time.Duration) (time.Duration, bool) {
	if len(schedule) == 0 {
		schedule = DefaultSchedule
	}
	if attempts >= len(schedule) {
		return 0, false
	}
	d := schedule[attempts]
	if d > 0 {
		d = time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
	}
	return max(d, retryAfter), true
}
