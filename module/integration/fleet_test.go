package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

// fleetCaddyfile is one instance of the fleet: the PostgreSQL store shared
// by all, 5-second policies, a sweeper every 300ms with a 500ms grace, and
// webhooks to the test receiver under a path naming the instance, so the
// receiver knows which instance sent each delivery. The shortest claim
// lease (claim_lease is raised to the webhook timeout + 20s, so 21s) lets
// the others take over the killed instance's claims sooner.
const fleetCaddyfile = `{
	admin 127.0.0.1:{$ADMIN_PORT}
	direct_upload {
		store postgres {
			dsn {$DSN}
			table_prefix fleet_
			statement_timeout 3s
		}
		sweep_interval 300ms
		expiry_grace 500ms
		claim_lease 1s
	}
}
http://127.0.0.1:{$SITE_PORT} {
	bind 127.0.0.1
	direct_upload {
		profile fleet
		base_path /up
		bucket fleet
		endpoint {$S3_ENDPOINT}
		path_style
		access_key_id {env.S3_ACCESS}
		secret_access_key {env.S3_SECRET}
		key fleet/{id}{ext}
		allowed_types image/png
		expires 5s
		max_size 64KiB
		identity {http.request.header.X-Test-User}
		webhook {$HOOK_URL}/{$INSTANCE} {
			secret {env.HOOK_SECRET}
			timeout 1s
			retry 0s 200ms 300ms 500ms 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s
			wait 1s
		}
	}
}
`

// fleetPerEndpoint is the dispatcher's bound on attempts in flight to one
// webhook URL (webhook.Dispatcher.PerEndpoint's default): an attempt holds
// its slot until its outcome is recorded, so at most this many deliveries
// of one instance can have reached the receiver without being recorded.
const fleetPerEndpoint = 16

// fleetDelivery is one accepted webhook request.
type fleetDelivery struct {
	WebhookID string
	Type      string
	IntentID  string
	Instance  string
	At        time.Time // when the request arrived
}

// fleetReceiver is the backends' webhook endpoint: it verifies every
// signature, takes 0-60ms to answer (so attempts are in flight when an
// instance dies) and records each delivery with the instance that sent it.
type fleetReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []fleetDelivery
	bad int
}

func newFleetReceiver(t *testing.T) *fleetReceiver {
	wh, err := standardwebhooks.NewWebhook(webhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	rc := &fleetReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			rc.mu.Lock()
			rc.bad++
			rc.mu.Unlock()
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p struct {
			Type string              `json:"type"`
			Data struct{ ID string } `json:"data"`
		}
		_ = json.Unmarshal(body, &p)
		arrived := time.Now()
		time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
		rc.mu.Lock()
		rc.got = append(rc.got, fleetDelivery{WebhookID: r.Header.Get("webhook-id"), Type: p.Type, IntentID: p.Data.ID,
			Instance: strings.TrimPrefix(r.URL.Path, "/"), At: arrived})
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *fleetReceiver) deliveries() []fleetDelivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]fleetDelivery(nil), rc.got...)
}

// fleetInstance is one Caddy of the fleet, restartable on its ports.
type fleetInstance struct {
	name  string
	url   string
	admin string
	cf    string
	env   []string
	mu    sync.Mutex
	caddy *testkit.Caddy
}

func (in *fleetInstance) start() error {
	c, err := testkit.StartCaddy(in.cf, in.admin, in.env)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.caddy = c
	in.mu.Unlock()
	return nil
}

// fleetOutcome is what the client was told about one intent.
type fleetOutcome struct {
	id     string
	action string // complete, fail, walkaway
	acked  bool   // the complete or fail was answered 200
	status string // what that answer said
}

// TestFleetOnPostgres runs three Caddy processes on one PostgreSQL, one
// versitygw and one webhook receiver. A client grants, uploads, completes,
// fails and walks away across the three at random while one instance is
// killed with SIGKILL and restarted, another is reloaded, and PostgreSQL is
// restarted. Then every acknowledged grant is readable through every
// instance, every intent has exactly one event for its outcome and the
// receiver got it under that event's id, pending intents expired once, and
// the bucket holds only completed intents' objects.
func TestFleetOnPostgres(t *testing.T) {
	db := pg
	if db == nil {
		var err error
		if db, err = testkit.StartPostgres(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
	}
	ctx := context.Background()
	if err := s3srv.CreateBucket(ctx, "fleet"); err != nil {
		t.Fatal(err)
	}
	rc := newFleetReceiver(t)
	dir := t.TempDir()
	cf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(fleetCaddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	fleet := make([]*fleetInstance, 3)
	for i := range fleet {
		site, _ := testkit.FreePort()
		admin, _ := testkit.FreePort()
		name := fmt.Sprintf("i%d", i)
		in := &fleetInstance{name: name, url: fmt.Sprintf("http://127.0.0.1:%d/up", site), admin: fmt.Sprintf("127.0.0.1:%d", admin), cf: cf}
		in.env = []string{
			fmt.Sprintf("SITE_PORT=%d", site), fmt.Sprintf("ADMIN_PORT=%d", admin), "INSTANCE=" + name,
			"DSN=" + db.DSN("fleet-"+name), "S3_ENDPOINT=" + s3srv.URL,
			"S3_ACCESS=" + s3srv.AccessKey, "S3_SECRET=" + s3srv.SecretKey,
			"HOOK_URL=" + rc.srv.URL, "HOOK_SECRET=" + webhookSecret,
			"XDG_DATA_HOME=" + filepath.Join(dir, name, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, name, "config"),
		}
		if err := in.start(); err != nil {
			t.Fatal(err)
		}
		fleet[i] = in
		t.Cleanup(func() {
			in.mu.Lock()
			c := in.caddy
			in.mu.Unlock()
			if c != nil && !c.Exited() {
				c.Stop(15 * time.Second)
			}
		})
	}
	dumpLogs := func() {
		for _, in := range fleet {
			in.mu.Lock()
			t.Logf("--- %s output (tail)\n%s", in.name, tail(in.caddy.Output(), 30))
			in.mu.Unlock()
		}
	}

	// The client: `total` intents, each on instances picked at random; a
	// request that fails for the fleet's trouble (no answer, 5xx) is tried
	// again on another instance, as a client behind a load balancer would.
	const total = 150
	var (
		started  atomic.Int64
		mu       sync.Mutex
		outcomes []fleetOutcome
		granted  []string // acknowledged grants
		retried  atomic.Int64
		gates    = map[int64]chan struct{}{60: make(chan struct{}), 95: make(chan struct{}), 135: make(chan struct{})}
	)
	png := pngFile(t)
	try := func(method, path string, body any) (response, error) {
		var last error
		// Long enough to outlast a database restart on a busy machine.
		for giveUp := time.Now().Add(90 * time.Second); time.Now().Before(giveUp); {
			in := fleet[rand.IntN(len(fleet))]
			r, err := fleetCall(method, in.url+path, body)
			if err == nil && r.Status < 500 {
				return r, nil
			}
			if err == nil {
				err = fmt.Errorf("%s %s on %s: %d %s", method, path, in.name, r.Status, r.Raw)
			}
			last = err
			retried.Add(1)
			time.Sleep(100 * time.Millisecond)
		}
		return response{}, last
	}
	one := func() error {
		g, err := try("POST", "", map[string]any{"content_type": "image/png", "filename": "f.png"})
		if err != nil {
			return err
		}
		if g.Status != 201 {
			return fmt.Errorf("grant: %d %s", g.Status, g.Raw)
		}
		id := g.str("id")
		mu.Lock()
		granted = append(granted, id)
		mu.Unlock()
		o := fleetOutcome{id: id}
		switch n := rand.IntN(10); {
		case n < 6:
			o.action = "complete"
		case n < 8:
			o.action = "fail"
		default:
			o.action = "walkaway"
		}
		if o.action != "walkaway" {
			if status, body, err := testkit.PostForm(g.str("url"), g.fields(), "image/png", png); err != nil || status != 201 {
				return fmt.Errorf("upload %s: %d %s %v", id, status, body, err)
			}
			var r response
			if o.action == "complete" {
				r, err = try("POST", "/"+id+"/complete", nil)
			} else {
				r, err = try("POST", "/"+id+"/fail", map[string]string{"reason": "fleet test"})
			}
			if err != nil {
				return err
			}
			if r.Status != 200 {
				return fmt.Errorf("%s %s: %d %s", o.action, id, r.Status, r.Raw)
			}
			o.acked, o.status = true, r.str("status")
		}
		mu.Lock()
		outcomes = append(outcomes, o)
		mu.Unlock()
		return nil
	}

	// The trouble, each at a point of the client's progress; the client
	// waits at the gate after each until it is over, so each happens under
	// load and none after the load.
	var (
		killAt, dbDownAt, dbUpAt time.Time
		killed                   = fleet[0]
	)
	waitStarted := func(n int64) {
		for started.Load() < n {
			time.Sleep(5 * time.Millisecond)
		}
	}
	chaosErr := make(chan error, 1)
	go func() {
		chaosErr <- func() error {
			waitStarted(30)
			killed.mu.Lock()
			killAt = time.Now()
			killed.caddy.Kill()
			killed.mu.Unlock()
			if err := killed.start(); err != nil {
				return fmt.Errorf("restarting %s after kill -9: %w", killed.name, err)
			}
			close(gates[60])
			waitStarted(70)
			r := fleet[1]
			if out, err := testkit.RunCaddy(r.env, "reload", "--config", r.cf, "--adapter", "caddyfile", "--address", r.admin, "--force"); err != nil {
				return fmt.Errorf("reloading %s: %v\n%s", r.name, err, out)
			}
			close(gates[95])
			waitStarted(105)
			dbDownAt = time.Now()
			if err := db.Restart(); err != nil {
				return err
			}
			dbUpAt = time.Now()
			close(gates[135])
			return nil
		}()
	}()
	begin := time.Now()
	var wg sync.WaitGroup
	clientErr := make(chan error, 8)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := started.Add(1)
				if n > total {
					return
				}
				if g, ok := gates[n]; ok {
					select {
					case <-g:
					case <-time.After(2 * time.Minute):
						clientErr <- fmt.Errorf("the trouble before intent %d took over 2 minutes", n)
						return
					}
				}
				if err := one(); err != nil {
					select {
					case clientErr <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(clientErr)
	for err := range clientErr {
		dumpLogs()
		t.Fatal(err)
	}
	if err := <-chaosErr; err != nil {
		dumpLogs()
		t.Fatal(err)
	}
	loadTook := time.Since(begin)
	settleBegin := time.Now()

	// Settled: no intent pending, every event delivered (recorded so).
	conn, err := pgx.Connect(ctx, db.DSN("fleet-check"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	type dbEvent struct{ id, intent, typ, state string }
	type dbIntent struct{ status, key string }
	var events []dbEvent
	intents := map[string]dbIntent{}
	read := func() error {
		events, intents = nil, map[string]dbIntent{}
		rows, err := conn.Query(ctx, `SELECT id, intent_id, type, state FROM fleet_events`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var e dbEvent
			if err := rows.Scan(&e.id, &e.intent, &e.typ, &e.state); err != nil {
				return err
			}
			events = append(events, e)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = conn.Query(ctx, `SELECT id, status, intent->>'key' FROM fleet_intents`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var in dbIntent
			if err := rows.Scan(&id, &in.status, &in.key); err != nil {
				return err
			}
			intents[id] = in
		}
		return rows.Err()
	}
	settled := func() bool {
		if err := read(); err != nil {
			t.Fatal(err)
		}
		for _, in := range intents {
			if in.status == "pending" {
				return false
			}
		}
		got := map[string]bool{}
		for _, d := range rc.deliveries() {
			got[d.WebhookID] = true
		}
		for _, e := range events {
			if e.state != "delivered" || !got[e.id] {
				return false
			}
		}
		return true
	}
	// Events the killed instance had claimed wait for their claim's lease
	// (21s here; DefaultLease bounds it).
	settleWithin := webhook.DefaultLease + time.Minute
	deadline := time.Now().Add(settleWithin)
	for !settled() {
		if time.Now().After(deadline) {
			dumpLogs()
			t.Fatalf("not settled %v after the load: %d intents, %d events", settleWithin, len(intents), len(events))
		}
		time.Sleep(200 * time.Millisecond)
	}
	settleTook := time.Since(settleBegin)

	// Every acknowledged grant is readable through every instance.
	for _, id := range granted {
		for _, in := range fleet {
			r, err := fleetCall("GET", in.url+"/"+id, nil)
			if err != nil || r.Status != 200 || r.str("id") != id {
				t.Fatalf("grant %s through %s: %v %d %s", id, in.name, err, r.Status, r.Raw)
			}
		}
	}

	// Each instance's admin API lists the whole fleet's intents.
	for _, in := range fleet {
		for _, st := range []string{"completed", "failed", "expired"} {
			want := 0
			for _, x := range intents {
				if x.status == st {
					want++
				}
			}
			r, err := fleetCall("GET", "http://"+in.admin+"/direct_upload/intents?limit=1000&status="+st, nil)
			list, _ := r.Body["intents"].([]any)
			if err != nil || r.Status != 200 || len(list) != want {
				t.Fatalf("%s's admin API lists %d %s intents, the store holds %d: %v %d", in.name, len(list), st, want, err, r.Status)
			}
		}
	}

	// One event per settled intent, of its outcome; acknowledged outcomes
	// are the recorded ones.
	byIntent := map[string][]dbEvent{}
	for _, e := range events {
		byIntent[e.intent] = append(byIntent[e.intent], e)
	}
	count := map[string]int{}
	for id, in := range intents {
		evs := byIntent[id]
		if len(evs) != 1 || evs[0].typ != "upload."+in.status {
			t.Fatalf("intent %s (%s) has events %v, want exactly one upload.%s", id, in.status, evs, in.status)
		}
		count[in.status]++
	}
	completions, fails, walkaways := 0, 0, 0
	for _, o := range outcomes {
		in, ok := intents[o.id]
		switch {
		case !ok:
			t.Fatalf("acknowledged grant %s is not in the store", o.id)
		case o.action == "complete" && (o.status != "completed" || in.status != "completed"):
			t.Fatalf("complete of %s answered %q, stored %q", o.id, o.status, in.status)
		case o.action == "fail" && (o.status != "failed" || in.status != "failed"):
			t.Fatalf("fail of %s answered %q, stored %q", o.id, o.status, in.status)
		case o.action == "walkaway" && in.status != "expired":
			t.Fatalf("walked-away intent %s is %q, want expired", o.id, in.status)
		}
		switch o.action {
		case "complete":
			completions++
		case "fail":
			fails++
		default:
			walkaways++
		}
	}

	// The receiver: each event under its own id, every attempt; duplicates
	// only of attempts that may have been unrecorded when the instance was
	// killed or the database went down.
	eventByID := map[string]dbEvent{}
	for _, e := range events {
		eventByID[e.id] = e
	}
	first := map[string]fleetDelivery{}
	dups, killDups, dbDups := 0, 0, 0
	for _, d := range rc.deliveries() {
		e, ok := eventByID[d.WebhookID]
		if !ok || e.intent != d.IntentID || e.typ != d.Type {
			t.Fatalf("delivery %+v does not match the store's event %+v", d, e)
		}
		f, seen := first[d.WebhookID]
		if !seen {
			first[d.WebhookID] = d
			continue
		}
		dups++
		// An attempt in flight arrived at most the webhook's timeout
		// (1s) before, plus a margin for a busy machine. After the
		// restart, a pooled connection the restart broke fails on its
		// first use: the record of an attempt that arrived just after may
		// fail too.
		const inFlight, brokenPool = 3 * time.Second, 2 * time.Second
		switch {
		case f.Instance == killed.name && !f.At.After(killAt) && f.At.After(killAt.Add(-inFlight)):
			killDups++
		case f.At.After(dbDownAt.Add(-inFlight)) && f.At.Before(dbUpAt.Add(brokenPool)):
			dbDups++
		default:
			t.Errorf("event %s (%s of %s) delivered again at %s by %s, first at %s by %s: neither in flight at the kill (%s) nor at the database restart (%s-%s)",
				d.WebhookID, d.Type, d.IntentID, d.At.Format(time.StampMilli), d.Instance, f.At.Format(time.StampMilli), f.Instance,
				killAt.Format(time.StampMilli), dbDownAt.Format(time.StampMilli), dbUpAt.Format(time.StampMilli))
		}
	}
	if killDups > fleetPerEndpoint {
		t.Errorf("%d duplicates from the killed instance, more than its %d attempts in flight", killDups, fleetPerEndpoint)
	}
	if dbDups > len(fleet)*fleetPerEndpoint {
		t.Errorf("%d duplicates around the database restart, more than the fleet's %d attempts in flight", dbDups, len(fleet)*fleetPerEndpoint)
	}
	if rc.bad != 0 {
		t.Errorf("%d deliveries failed signature verification", rc.bad)
	}
	perInstance := map[string]int{}
	for _, d := range rc.deliveries() {
		perInstance[d.Instance]++
	}

	// The bucket holds only completed intents' objects.
	completedKeys := map[string]bool{}
	for _, in := range intents {
		if in.status == "completed" {
			completedKeys[in.key] = true
		}
	}
	objects := 0
	p := s3.NewListObjectsV2Paginator(s3srv.Client(), &s3.ListObjectsV2Input{Bucket: aws.String("fleet")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			objects++
			if !completedKeys[aws.ToString(o.Key)] {
				t.Errorf("object %s in the bucket has no completed intent", aws.ToString(o.Key))
			}
		}
	}
	if objects != count["completed"] {
		t.Errorf("%d objects in the bucket for %d completed intents", objects, count["completed"])
	}

	names := make([]string, 0, len(perInstance))
	for n := range perInstance {
		names = append(names, n)
	}
	sort.Strings(names)
	var per []string
	for _, n := range names {
		per = append(per, fmt.Sprintf("%s %d", n, perInstance[n]))
	}
	summary := fmt.Sprintf("fleet: %d intents granted (%d acknowledged, %d requests retried on another instance) in %v, settled %v later; "+
		"client outcomes: %d completions, %d fails, %d walk-aways; store: %d intents (%d completed, %d failed, %d expired, %d rejected), %d events; "+
		"receiver: %d deliveries (%s), %d duplicates (%d of the kill -9, %d of the database restart); %d objects in the bucket",
		len(intents), len(granted), retried.Load(), loadTook.Round(time.Millisecond), settleTook.Round(time.Millisecond),
		completions, fails, walkaways, len(intents), count["completed"], count["failed"], count["expired"], count["rejected"], len(events),
		len(rc.deliveries()), strings.Join(per, ", "), dups, killDups, dbDups, objects)
	fmt.Println(summary)
	t.Log(summary)
	reportFaultMatrix(t, "fleet", summary) // make test prints it
}

// fleetCall is call without failing the test: the fleet's trouble makes
// requests fail, and the client tries again.
func fleetCall(method, url string, body any) (response, error) {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = strings.NewReader(string(data))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return response{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(carol[0], carol[1])
	resp, err := apiClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Raw: string(raw), Header: resp.Header}
	_ = json.Unmarshal(raw, &r.Body)
	return r, nil
}
