package console

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/app"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/upload"
)

// Bounds of the work one request does: the store's listings are paged, and
// a request reads at most this many records of each listing.
const (
	pageSize   = 500
	maxScan    = 20000
	maxResults = 100
	window     = time.Hour
	bucket     = 5 * time.Minute
	buckets    = int(window / bucket)
)

// StripURL returns u without what may be a secret: its userinfo, query and
// fragment. What cannot be parsed is not shown at all.
func StripURL(u string) string {
	if u == "" {
		return ""
	}
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "(unparsable URL hidden)"
	}
	p.User, p.RawQuery, p.ForceQuery, p.Fragment, p.RawFragment = nil, "", false, "", ""
	return p.String()
}

var urlInText = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+`)

// Scrub strips every URL in a text (an attempt's error) as StripURL does,
// and drops anything that looks like a webhook secret or signature.
func Scrub(s string) string {
	s = urlInText.ReplaceAllStringFunc(s, func(u string) string { return StripURL(strings.TrimRight(u, ".,;:)")) })
	return secretInText.ReplaceAllString(s, "[hidden]")
}

// secretInText matches Standard Webhooks secrets (whsec_...) and
// signatures (v1,<base64>).
var secretInText = regexp.MustCompile(`whsec_[A-Za-z0-9+/=]+|v1a?,[A-Za-z0-9+/=]{16,}`)

// Series are one profile's counts per 5-minute bucket, oldest first.
type Series struct {
	Granted   []int `json:"granted"`
	Completed []int `json:"completed"`
	Rejected  []int `json:"rejected"`
	Failed    []int `json:"failed"`
	Expired   []int `json:"expired"`
}

func newSeries() *Series {
	return &Series{Granted: make([]int, buckets), Completed: make([]int, buckets), Rejected: make([]int, buckets),
		Failed: make([]int, buckets), Expired: make([]int, buckets)}
}

// Health is the webhook delivery health of one profile's endpoint.
type Health struct {
	Endpoint        string    `json:"endpoint"`
	DeliveredHour   int       `json:"delivered_last_hour"`
	Pending         int       `json:"pending"`
	Dead            int       `json:"dead"`
	OldestPending   time.Time `json:"oldest_pending,omitzero"`
	OldestPendingS  float64   `json:"oldest_pending_age_s,omitempty"`
	LastError       string    `json:"last_error,omitempty"`
	LastErrorAt     time.Time `json:"last_error_at,omitzero"`
	LastErrorStatus int       `json:"last_error_status,omitempty"`
}

// ProfileOverview is one profile's chart and webhook health.
type ProfileOverview struct {
	Name       string  `json:"name"`
	Configured bool    `json:"configured"`
	Series     *Series `json:"series"`
	Health     Health  `json:"webhook"`
}

// Overview is the console's first screen.
type Overview struct {
	Now           time.Time          `json:"now"`
	Since         time.Time          `json:"since"`
	BucketMinutes int                `json:"bucket_minutes"`
	Profiles      []*ProfileOverview `json:"profiles"`
	// Truncated says a listing hit the bound: counts are lower bounds.
	Truncated bool `json:"truncated"`
}

// idFloor is the smallest id (ULID layout, as upload.NewID makes them)
// minted at t: listings in id order start there.
func idFloor(t time.Time) string {
	const crockford = "0123456789abcdefghjkmnpqrstvwxyz"
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixMilli())<<16) // 48-bit time, then zeros
	hi := binary.BigEndian.Uint64(b[:])
	var out [26]byte
	// 128 bits as 26 characters; the low 64 bits are zero.
	var lo uint64
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

func overview(ctx context.Context, src *app.ConsoleSource, now time.Time) (*Overview, error) {
	now = now.UTC()
	since := now.Add(-window)
	ov := &Overview{Now: now, Since: since, BucketMinutes: int(bucket / time.Minute)}
	byName := map[string]*ProfileOverview{}
	prof := func(name string) *ProfileOverview {
		p := byName[name]
		if p == nil {
			p = &ProfileOverview{Name: name, Series: newSeries(), Health: Health{Endpoint: endpointOf(src, name)}}
			byName[name] = p
		}
		return p
	}
	for _, p := range src.Profiles {
		prof(p.Name).Configured = true
	}
	slot := func(t time.Time) int {
		if t.Before(since) || t.After(now) {
			return -1
		}
		return min(int(t.Sub(since)/bucket), buckets-1)
	}
	// Transitions of the last hour: their events, in id (time) order from
	// an hour ago.
	granted := map[string]bool{}
	after, n := "evt_"+idFloor(since), 0
	for {
		evs, err := src.Store.Events(ctx, "", after, pageSize)
		if err != nil {
			return nil, err
		}
		for i := range evs {
			ev := &evs[i]
			p := prof(ev.Intent.Profile)
			if s := slot(ev.CreatedAt); s >= 0 {
				switch ev.Type {
				case store.EventCompleted:
					p.Series.Completed[s]++
				case store.EventRejected, store.EventQuarantined:
					p.Series.Rejected[s]++
				case store.EventFailed:
					p.Series.Failed[s]++
				case store.EventExpired:
					p.Series.Expired[s]++
				}
			}
			if s := slot(ev.Intent.CreatedAt); s >= 0 && !granted[ev.Intent.ID] {
				granted[ev.Intent.ID] = true
				p.Series.Granted[s]++
			}
			if ev.Delivery.State == store.DeliveryDelivered && slot(ev.Delivery.DeliveredAt) >= 0 {
				p.Health.DeliveredHour++
			}
		}
		n += len(evs)
		if len(evs) < pageSize {
			break
		}
		if n >= maxScan {
			ov.Truncated = true
			break
		}
		after = evs[len(evs)-1].ID
	}
	// Grants still pending.
	var cur store.Cursor
	for n = 0; ; {
		ins, next, err := src.Store.ListStatus(ctx, store.StatusPending, "", cur, pageSize)
		if err != nil {
			return nil, err
		}
		for _, in := range ins {
			if s := slot(in.CreatedAt); s >= 0 && !granted[in.ID] {
				granted[in.ID] = true
				prof(in.Profile).Series.Granted[s]++
			}
		}
		n += len(ins)
		if next == nil {
			break
		}
		if n >= maxScan {
			ov.Truncated = true
			break
		}
		cur = next
	}
	// Deliveries waiting or dead, whenever they were written.
	for _, state := range []store.DeliveryState{store.DeliveryPending, store.DeliveryDead} {
		after, n = "", 0
		for {
			evs, err := src.Store.Events(ctx, state, after, pageSize)
			if err != nil {
				return nil, err
			}
			for i := range evs {
				ev := &evs[i]
				h := &prof(ev.Intent.Profile).Health
				if state == store.DeliveryPending {
					h.Pending++
					if h.OldestPending.IsZero() || ev.CreatedAt.Before(h.OldestPending) {
						h.OldestPending = ev.CreatedAt
						h.OldestPendingS = now.Sub(ev.CreatedAt).Seconds()
					}
				} else {
					h.Dead++
				}
				if d := ev.Delivery; d.LastError != "" && d.LastAttemptAt.After(h.LastErrorAt) {
					h.LastError, h.LastErrorAt, h.LastErrorStatus = Scrub(d.LastError), d.LastAttemptAt, d.LastStatus
				}
			}
			n += len(evs)
			if len(evs) < pageSize {
				break
			}
			if n >= maxScan {
				ov.Truncated = true
				break
			}
			after = evs[len(evs)-1].ID
		}
	}
	for _, p := range byName {
		ov.Profiles = append(ov.Profiles, p)
	}
	sort.Slice(ov.Profiles, func(i, j int) bool { return ov.Profiles[i].Name < ov.Profiles[j].Name })
	return ov, nil
}

// endpointOf is a profile's webhook URL, stripped, or "" for none.
func endpointOf(src *app.ConsoleSource, profile string) string {
	for _, p := range src.Profiles {
		if p.Name == profile {
			return StripURL(p.WebhookURL)
		}
	}
	return ""
}

// IntentRow is an intent in the search results.
type IntentRow struct {
	ID        string       `json:"id"`
	Profile   string       `json:"profile"`
	Status    store.Status `json:"status"`
	Identity  string       `json:"identity,omitempty"`
	Key       string       `json:"key"`
	Filename  string       `json:"filename,omitempty"`
	Reason    string       `json:"reason,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

func rowOf(in *store.Intent) IntentRow {
	return IntentRow{ID: in.ID, Profile: in.Profile, Status: in.Status, Identity: in.Identity, Key: in.Key,
		Filename: in.Filename, Reason: in.Reason, CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt}
}

// SearchResult is a page of matching intents, newest first.
type SearchResult struct {
	Intents   []IntentRow `json:"intents"`
	Truncated bool        `json:"truncated"`
}

var statuses = []store.Status{store.StatusPending, store.StatusCompleted, store.StatusRejected, store.StatusFailed, store.StatusExpired}

// search finds intents whose id, identity, key or filename contains q
// (case-insensitive), in one status or all; an exact intent or event id is
// looked up directly.
func search(ctx context.Context, src *app.ConsoleSource, q string, status store.Status) (*SearchResult, error) {
	q = strings.TrimSpace(q)
	if len(q) > 512 {
		return nil, errors.New("the search text is too long")
	}
	want := statuses
	if status != "" {
		ok := false
		for _, s := range statuses {
			ok = ok || s == status
		}
		if !ok {
			return nil, fmt.Errorf("status must be one of pending, completed, rejected, failed, expired")
		}
		want = []store.Status{status}
	}
	res := &SearchResult{Intents: []IntentRow{}}
	if id := strings.ToLower(q); upload.ValidID(id) || validEventID(id) {
		if validEventID(id) {
			if ev, err := src.Store.Event(ctx, id); err == nil {
				id = ev.Intent.ID
			}
		}
		in, err := src.Store.Get(ctx, id)
		if err == nil && (status == "" || in.Status == status) {
			res.Intents = append(res.Intents, rowOf(in))
		}
		if err == nil || errors.Is(err, store.ErrNotFound) {
			return res, nil
		}
		return nil, err
	}
	needle := strings.ToLower(q)
	budget := maxScan
	for _, st := range want {
		var cur store.Cursor
		for budget > 0 {
			ins, next, err := src.Store.ListStatus(ctx, st, "", cur, min(pageSize, budget))
			if err != nil {
				return nil, err
			}
			budget -= len(ins)
			for _, in := range ins {
				if needle == "" || strings.Contains(strings.ToLower(in.ID), needle) ||
					strings.Contains(strings.ToLower(in.Identity), needle) ||
					strings.Contains(strings.ToLower(in.Key), needle) ||
					strings.Contains(strings.ToLower(in.Filename), needle) {
					res.Intents = append(res.Intents, rowOf(in))
				}
			}
			if next == nil {
				break
			}
			cur = next
		}
		if budget <= 0 {
			res.Truncated = true
			break
		}
	}
	sort.Slice(res.Intents, func(i, j int) bool { return res.Intents[i].CreatedAt.After(res.Intents[j].CreatedAt) })
	if len(res.Intents) > maxResults {
		res.Intents, res.Truncated = res.Intents[:maxResults], true
	}
	return res, nil
}

// DeliveryView is an outbox event and its delivery, as the console shows
// it: the endpoint stripped, the error scrubbed, no response body.
type DeliveryView struct {
	ID            string              `json:"id"`
	Type          string              `json:"type"`
	CreatedAt     time.Time           `json:"created_at"`
	IntentID      string              `json:"intent_id"`
	Profile       string              `json:"profile"`
	Identity      string              `json:"identity,omitempty"`
	Key           string              `json:"key"`
	Endpoint      string              `json:"endpoint"`
	State         store.DeliveryState `json:"state"`
	Attempts      int                 `json:"attempts"`
	NextAttemptAt time.Time           `json:"next_attempt_at,omitzero"`
	LastAttemptAt time.Time           `json:"last_attempt_at,omitzero"`
	LastStatus    int                 `json:"last_status,omitempty"`
	LastLatencyMS float64             `json:"last_latency_ms,omitempty"`
	LastError     string              `json:"last_error,omitempty"`
	DeliveredAt   time.Time           `json:"delivered_at,omitzero"`
}

func viewDelivery(ev *store.Event, endpoint string) DeliveryView {
	d := ev.Delivery
	return DeliveryView{ID: ev.ID, Type: ev.Type, CreatedAt: ev.CreatedAt, IntentID: ev.Intent.ID, Profile: ev.Intent.Profile,
		Identity: ev.Intent.Identity, Key: ev.Intent.Key, Endpoint: endpoint, State: d.State, Attempts: d.Attempts,
		NextAttemptAt: d.NextAttemptAt, LastAttemptAt: d.LastAttemptAt, LastStatus: d.LastStatus,
		LastLatencyMS: d.LastLatencyMS, LastError: Scrub(d.LastError), DeliveredAt: d.DeliveredAt}
}

// Step is one line of an intent's story.
type Step struct {
	At     time.Time `json:"at"`
	What   string    `json:"what"`
	Detail string    `json:"detail,omitempty"`
	// Tone is ok, bad, wait or info: how the page colours it.
	Tone string `json:"tone"`
}

// Story is one intent's whole story.
type Story struct {
	Intent     IntentDetail   `json:"intent"`
	Steps      []Step         `json:"steps"`
	Deliveries []DeliveryView `json:"deliveries"`
}

// IntentDetail is an intent's fields that the console shows: everything
// but the multipart upload id and the backend's answer.
type IntentDetail struct {
	IntentRow
	Bucket      string    `json:"bucket"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size,omitempty"`
	MaxSize     int64     `json:"max_size"`
	ExpiresAt   time.Time `json:"expires_at"`
	ObjectSize  int64     `json:"object_size,omitempty"`
	ObjectType  string    `json:"object_type,omitempty"`
	Detail      string    `json:"detail,omitempty"`
	VerifiedAt  time.Time `json:"verified_at,omitzero"`
	PartCount   int       `json:"part_count,omitempty"`
	Settled     bool      `json:"settled,omitempty"`
}

func story(ctx context.Context, src *app.ConsoleSource, id string) (*Story, error) {
	if !upload.ValidID(id) {
		return nil, store.ErrNotFound
	}
	in, err := src.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	st := &Story{Intent: IntentDetail{IntentRow: rowOf(in), Bucket: in.Bucket, ContentType: in.ContentType, Size: in.Size,
		MaxSize: in.MaxSize, ExpiresAt: in.ExpiresAt, ObjectSize: in.ObjectSize, ObjectType: in.ObjectType,
		Detail: in.Detail, VerifiedAt: in.VerifiedAt, PartCount: in.PartCount, Settled: in.Settled},
		Deliveries: []DeliveryView{}}
	grant := fmt.Sprintf("%s, up to %d bytes, policy until %s", in.ContentType, in.MaxSize, in.ExpiresAt.UTC().Format(time.RFC3339))
	if in.Identity != "" {
		grant = "to " + in.Identity + ": " + grant
	}
	if in.PartCount > 0 {
		grant += fmt.Sprintf(", multipart in %d parts", in.PartCount)
	}
	st.Steps = append(st.Steps, Step{At: in.CreatedAt, What: "granted", Detail: grant, Tone: "info"})
	switch in.Status {
	case store.StatusPending:
		st.Steps = append(st.Steps, Step{At: in.UpdatedAt, What: "waiting for the upload", Detail: "nothing verified yet", Tone: "wait"})
	case store.StatusCompleted:
		st.Steps = append(st.Steps, Step{At: firstTime(in.VerifiedAt, in.UpdatedAt), What: "upload verified",
			Detail: fmt.Sprintf("%d bytes of %s in %s", in.ObjectSize, in.ObjectType, in.Key), Tone: "ok"})
	case store.StatusRejected:
		st.Steps = append(st.Steps, Step{At: firstTime(in.VerifiedAt, in.UpdatedAt), What: "upload rejected: " + in.Reason,
			Detail: in.Detail, Tone: "bad"})
	case store.StatusFailed:
		st.Steps = append(st.Steps, Step{At: in.UpdatedAt, What: "failed: " + in.Reason, Detail: in.Detail, Tone: "bad"})
	case store.StatusExpired:
		st.Steps = append(st.Steps, Step{At: in.UpdatedAt, What: "expired", Detail: "no upload arrived before the policy expired", Tone: "wait"})
	}
	ep := endpointOf(src, in.Profile)
	for _, eid := range in.Events {
		ev, err := src.Store.Event(ctx, eid)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		v := viewDelivery(ev, ep)
		st.Deliveries = append(st.Deliveries, v)
		st.Steps = append(st.Steps, Step{At: ev.CreatedAt, What: "webhook " + ev.Type + " queued", Detail: "event " + ev.ID, Tone: "info"})
		if v.Attempts > 0 || !v.LastAttemptAt.IsZero() {
			detail := fmt.Sprintf("%d attempt(s) since the last (re)delivery request; the last one answered", v.Attempts)
			if v.LastStatus != 0 {
				detail += fmt.Sprintf(" %d", v.LastStatus)
			} else {
				detail += " nothing"
			}
			if v.LastLatencyMS > 0 {
				detail += fmt.Sprintf(" in %.1f ms", v.LastLatencyMS)
			}
			if v.LastError != "" {
				detail += ": " + v.LastError
			}
			if ep != "" {
				detail += " (" + ep + ")"
			}
			tone := map[store.DeliveryState]string{store.DeliveryDelivered: "ok", store.DeliveryDead: "bad"}[v.State]
			if tone == "" {
				tone = "wait"
			}
			st.Steps = append(st.Steps, Step{At: v.LastAttemptAt, What: "webhook " + string(v.State), Detail: detail, Tone: tone})
		} else if v.State == store.DeliverySkipped {
			st.Steps = append(st.Steps, Step{At: ev.CreatedAt, What: "webhook skipped", Detail: "the profile has no webhook", Tone: "info"})
		}
	}
	sort.SliceStable(st.Steps, func(i, j int) bool { return st.Steps[i].At.Before(st.Steps[j].At) })
	return st, nil
}

func firstTime(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// DeadList is a page of dead deliveries.
type DeadList struct {
	Deliveries []DeliveryView `json:"deliveries"`
	Next       string         `json:"next,omitempty"`
}

func deadList(ctx context.Context, src *app.ConsoleSource, after string) (*DeadList, error) {
	if after != "" && !validEventID(after) {
		return nil, errors.New("after must be an event id")
	}
	evs, err := src.Store.Events(ctx, store.DeliveryDead, after, maxResults+1)
	if err != nil {
		return nil, err
	}
	out := &DeadList{Deliveries: []DeliveryView{}}
	for i := range evs {
		if i == maxResults {
			out.Next = evs[i-1].ID
			break
		}
		out.Deliveries = append(out.Deliveries, viewDelivery(&evs[i], endpointOf(src, evs[i].Intent.Profile)))
	}
	return out, nil
}
