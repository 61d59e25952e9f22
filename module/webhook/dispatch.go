package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// Dispatcher delivers due outbox events, at least once each. One runs per
// store (per Caddy process), whatever the number of configs or reloads.
//
// Instances sharing a store (fleet mode) share its outbox through claims:
// each pass claims due events for this instance (Owner) with a lease
// (store.ClaimDue), attempts them, and the attempt's record ends the
// claim. An event claimed by another instance is left alone until that
// claim's lease runs out (its owner crashed): then it is taken over. No
// attempt outlives its claim's lease (see Lease).
//
// Concurrency is bounded twice: in total, and per endpoint URL, so a slow
// or dead endpoint holds at most its own share of the workers and cannot
// starve the others.
type Dispatcher struct {
	Store  store.Store
	Sender *Sender
	// Endpoints returns the webhook endpoint of a profile in the current
	// config, and how to treat its events: Ready (deliver; a nil endpoint
	// means the profile has no webhook and its events are marked skipped),
	// Unknown (the profile is not in the config: its events wait, moved
	// back a little so they do not clog the front of the queue), or
	// NoConfig (between configs: nothing is looked at).
	Endpoints func(profile string) (*Endpoint, Lookup)
	// Logger is the logger at Start; SetLogger replaces it later.
	Logger *zap.Logger
	// Now is the clock every decision is taken on (what is due, when to
	// retry); time.Now by default. Tests move it to check clock jumps.
	Now func() time.Time
	// MaxInFlight bounds attempts in flight in total, PerEndpoint per URL.
	MaxInFlight int
	PerEndpoint int
	// Poll is how often due events are looked for without a kick.
	Poll time.Duration
	// Owner names this instance in its claims; NewInstanceID by default.
	Owner string
	// Lease is how long a claim lasts at least (DefaultLease by default):
	// the time after which another instance takes over the events a
	// crashed one had claimed; size it above the longest endpoint timeout
	// plus twice LeaseMargin. Each claim's lease is the longer of Lease
	// and the longest endpoint timeout seen plus twice LeaseMargin, and
	// every attempt is cut LeaseMargin before its claim's lease ends, so
	// that its outcome is recorded while the claim still holds.
	Lease time.Duration
	// Backoff paces the retries while the store is unavailable.
	Backoff store.Backoff

	kick     chan struct{}
	stop     chan struct{}
	loopDone chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	records chan recordReq
	recDone chan struct{}

	mu        sync.Mutex
	cancelled []string // events whose attempt Stop cancelled: unclaimed at the end
	// inflight holds the events whose attempt has started and not ended:
	// being sent, or sent and waiting for their record to be durable.
	inflight map[string]bool
	// sending counts the attempts whose request is in progress, perURL
	// the same by endpoint URL: the bounds apply to these. An attempt
	// leaves them as soon as its answer is in, so that the next request
	// goes out while the record waits for the group commit.
	sending int
	perURL  map[string]int
	// queue holds, by URL, events a pass claimed while their endpoint
	// had no free slot: each attempt to that URL starts the next one as
	// soon as its answer is in, without another look at the due index.
	// They are in inflight too; nqueued counts them.
	queue    map[string][]queued
	nqueued  int
	stopping bool // Stop began: queued events are not started any more
	waiters  map[string][]chan Result

	log atomic.Pointer[zap.Logger]
	// passes counts looks at the due index, so tests can wait for one.
	passes atomic.Int64
	// longest is the longest endpoint timeout seen, which sizes leases.
	longest atomic.Int64
}

// queued is an event claimed by a pass and waiting for a sending slot.
type queued struct {
	id     string
	ev     *store.Event // as claimed; nil: read it when it starts
	ep     *Endpoint
	cutoff time.Time
}

// queueDepth is how many times its sending bound an endpoint may have
// queued (and the dispatcher in all, times MaxInFlight): a pass claims
// that much ahead, so that a busy endpoint costs a look at the due index
// per few rounds of attempts rather than one per attempt.
const queueDepth = 4

// DefaultLease is the default of Dispatcher.Lease.
const DefaultLease = time.Minute

// LeaseMargin is the time kept at the end of a claim's lease to record an
// attempt's outcome.
const LeaseMargin = 10 * time.Second

// lease is the lease of the next claims.
func (d *Dispatcher) lease() time.Duration {
	return max(d.Lease, time.Duration(d.longest.Load())+2*LeaseMargin)
}

// SetLogger makes the dispatcher log to l from now on: a reloaded config's
// logger replaces the first one's.
func (d *Dispatcher) SetLogger(l *zap.Logger) {
	if l != nil {
		d.log.Store(l)
	}
}

func (d *Dispatcher) logger() *zap.Logger { return d.log.Load() }

// Lookup says what the current config knows of a profile.
type Lookup int

// Lookup results.
const (
	Ready Lookup = iota
	Unknown
	NoConfig
)

// unknownDelay is how far back the events of a profile missing from the
// config are moved each time they come due.
const unknownDelay = time.Minute

// Start begins delivering in the background.
func (d *Dispatcher) Start() {
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	if d.log.Load() == nil {
		d.log.Store(d.Logger)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Sender == nil {
		d.Sender = NewSender()
	}
	if d.MaxInFlight <= 0 {
		d.MaxInFlight = 64
	}
	if d.PerEndpoint <= 0 {
		d.PerEndpoint = 16
	}
	if d.Poll <= 0 {
		d.Poll = time.Second
	}
	if d.Owner == "" {
		d.Owner = store.NewInstanceID()
	}
	if d.Lease <= 0 {
		d.Lease = DefaultLease
	}
	d.kick = make(chan struct{}, 1)
	d.stop = make(chan struct{})
	d.loopDone = make(chan struct{})
	d.inflight = make(map[string]bool)
	d.perURL = make(map[string]int)
	d.queue = make(map[string][]queued)
	d.waiters = make(map[string][]chan Result)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.records = make(chan recordReq, 64)
	d.recDone = make(chan struct{})
	go d.recorder()
	go d.loop()
	d.Kick() // events of a previous run may be due
}

// recordReq asks the recorder to store an attempt's outcome.
type recordReq struct {
	id   string
	d    store.Delivery
	done chan error
}

// maxRecordBatch bounds one group commit of delivery records, and the
// attempts answered but not yet recorded (beyond MaxInFlight) bounds what
// a slow store lets pile up.
const maxRecordBatch = 256

// recorder writes attempt outcomes in batches: with synced writes, one
// commit per batch instead of one per delivery is what lets a busy
// dispatcher keep up.
func (d *Dispatcher) recorder() {
	defer close(d.recDone)
	for req := range d.records {
		reqs := []recordReq{req}
		batch := map[string]store.Delivery{req.id: req.d}
	drain:
		for len(reqs) < maxRecordBatch {
			select {
			case r, ok := <-d.records:
				if !ok {
					break drain
				}
				reqs = append(reqs, r)
				batch[r.id] = r.d
			default:
				break drain
			}
		}
		err := d.Store.SetDeliveries(context.Background(), batch)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrStateChanged) {
			// Someone (an operator's redelivery) touched one of them:
			// write one by one so the others are not held back.
			for _, r := range reqs {
				_, e := d.Store.SetDelivery(context.Background(), r.id, r.d)
				r.done <- e
			}
			continue
		}
		for _, r := range reqs {
			r.done <- err
		}
	}
}

// commit stores one attempt's outcome through the recorder and waits for
// it to be durable.
func (d *Dispatcher) commit(id string, dl store.Delivery) error {
	done := make(chan error, 1)
	d.records <- recordReq{id: id, d: dl, done: done}
	return <-done
}

// Stop stops looking for work and waits up to grace for attempts in
// flight; then it cancels them. Events whose attempt was cancelled stay
// due and are delivered after the next start.
func (d *Dispatcher) Stop(grace time.Duration) {
	close(d.stop)
	<-d.loopDone
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		d.logger().Warn("webhook attempts still in flight at shutdown; cancelling, they will be retried after restart")
		d.cancel()
		<-done
	}
	d.cancel()
	close(d.records)
	<-d.recDone
	// Attempts cancelled by the stop were not recorded, and queued
	// events were not started: give their claims up, so that another
	// instance (or this one restarted, a new owner) sends them now
	// rather than after the lease.
	d.mu.Lock()
	ids := d.cancelled
	for url, qs := range d.queue {
		for _, q := range qs {
			ids = append(ids, q.id)
			delete(d.inflight, q.id)
		}
		delete(d.queue, url)
	}
	d.nqueued = 0
	d.mu.Unlock()
	if len(ids) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Store.Unclaim(ctx, d.Owner, ids); err != nil && !errors.Is(err, store.ErrClosed) {
			d.logger().Warn("releasing the claims of cancelled webhook attempts failed; they run out with the lease", zap.Int("events", len(ids)), zap.Error(err))
		}
	}
}

// Kick makes the dispatcher look for due events now.
func (d *Dispatcher) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// loop makes a pass at each kick or poll. While the store is unavailable
// it backs off (Backoff, kicks ignored), logging the outage once when it
// begins and once when it ends, and resumes by itself.
func (d *Dispatcher) loop() {
	defer close(d.loopDone)
	t := time.NewTicker(d.Poll)
	defer t.Stop()
	// The app logs the instance id when the store opens; this line is for debugging.
	d.logger().Debug("webhook dispatcher started", zap.String("instance", d.Owner), zap.Duration("lease", d.lease()))
	for {
		select {
		case <-d.stop:
			return
		case <-d.kick:
		case <-t.C:
		}
		for {
			err := d.dispatchDue()
			if !errors.Is(err, store.ErrUnavailable) {
				if ok, down := d.Backoff.Ok(); ok {
					d.logger().Warn("store reachable again; webhook delivery resumed", zap.Duration("down_for", down))
				}
				break
			}
			wait, first := d.Backoff.Fail()
			if first {
				d.logger().Error("store unavailable; webhook delivery backs off until it returns", zap.Error(err))
			}
			bo := time.NewTimer(wait)
			select {
			case <-d.stop:
				bo.Stop()
				return
			case <-bo.C:
			}
		}
	}
}

// dispatchDue makes one pass: it claims due events, as many per profile
// as there are free workers, and starts their attempts. Claimed events it
// does not start are unclaimed at the end of the pass. It returns the
// claim's error (ErrUnavailable makes the loop back off).
func (d *Dispatcher) dispatchDue() error {
	defer d.passes.Add(1)
	d.mu.Lock()
	free := min(d.MaxInFlight-d.sending+queueDepth*d.MaxInFlight-d.nqueued,
		d.MaxInFlight+maxRecordBatch-(len(d.inflight)-d.nqueued))
	// The least loaded URL in use (sending and queued): a profile's
	// events go to one URL, so no more than its free slots and queue
	// room can be kept; claiming more would only mean reading events to
	// unclaim them. A URL not in use has room for all, but it is not
	// known here: a profile is always claimed at least PerEndpoint.
	least := -1
	for url, qs := range d.queue {
		if n := d.perURL[url] + len(qs); least < 0 || n < least {
			least = n
		}
	}
	for url, n := range d.perURL {
		if _, queued := d.queue[url]; !queued && (least < 0 || n < least) {
			least = n
		}
	}
	d.mu.Unlock()
	if free <= 0 {
		return nil
	}
	perProfile := min(free, max(d.PerEndpoint, (1+queueDepth)*d.PerEndpoint-max(least, 0)))
	lease := d.lease()
	// Attempts under these claims end LeaseMargin before the lease does,
	// on the real clock (d.Now may be a test's).
	cutoff := time.Now().Add(lease - LeaseMargin)
	due, err := d.Store.ClaimDue(d.ctx, d.Owner, d.Now(), lease, perProfile)
	if err != nil {
		if !errors.Is(err, store.ErrClosed) && !errors.Is(err, store.ErrUnavailable) {
			d.logger().Error("claiming due webhook events failed", zap.Error(err))
		}
		return err
	}
	// Events of profiles missing from the config are moved back in one
	// write per pass, not one each: a large backlog of a removed profile
	// must not hold this loop (and so every other endpoint) back. Events
	// claimed but not started are unclaimed, so that they need not wait
	// for the lease (another instance may have a free worker now).
	var later, unclaim []string
	defer func() {
		d.postpone(later)
		if len(unclaim) > 0 && d.ctx.Err() == nil {
			if err := d.Store.Unclaim(d.ctx, d.Owner, unclaim); err != nil && !errors.Is(err, store.ErrClosed) {
				d.logger().Debug("unclaiming webhook events failed; their claims run out with the lease", zap.Error(err))
			}
		}
	}()
	order := interleave(due)
	for i, du := range order {
		ep, lookup := d.Endpoints(du.Profile)
		switch lookup {
		case NoConfig:
			for _, rest := range order[i:] {
				unclaim = append(unclaim, rest.EventID)
			}
			return nil
		case Unknown:
			later = append(later, du.EventID)
			continue
		}
		ok := ep != nil
		if ok {
			if to := int64(ep.Timeout); to > d.longest.Load() {
				d.longest.Store(to) // the next claims' leases cover it
			}
		}
		// Take the slots before reading the event: events of an endpoint
		// at capacity, or already in flight, cost nothing more.
		url := ""
		if ok {
			url = ep.URL
		}
		d.mu.Lock()
		if d.inflight[du.EventID] {
			// In flight here since before its claim ran out (a clock
			// jump): the claim is this instance's again; keep it.
			d.mu.Unlock()
			continue
		}
		if d.sending >= d.MaxInFlight || len(d.inflight)-d.nqueued >= d.MaxInFlight+maxRecordBatch || ok && d.perURL[url] >= d.PerEndpoint {
			if ok && len(d.queue[url]) < queueDepth*d.PerEndpoint && d.nqueued < queueDepth*d.MaxInFlight {
				d.inflight[du.EventID] = true
				d.queue[url] = append(d.queue[url], queued{id: du.EventID, ev: du.Event, ep: ep, cutoff: cutoff})
				d.nqueued++
			} else {
				unclaim = append(unclaim, du.EventID)
			}
			d.mu.Unlock()
			continue
		}
		d.take(du.EventID, url)
		d.mu.Unlock()
		if d.begin(du.EventID, du.Event, ep, url, cutoff, true) {
			unclaim = append(unclaim, du.EventID)
		}
	}
	return nil
}

// take takes the slots of an attempt; d.mu is held.
func (d *Dispatcher) take(id, url string) {
	d.inflight[id] = true
	d.sending++
	if url != "" {
		d.perURL[url]++
	}
	d.wg.Add(1)
}

// begin starts the attempt of an event whose slots are taken (or,
// without an endpoint, skips it), from ev, the event as claimed, or, if
// the store did not hand it over (nil), the event read now. It reports
// whether the event was left alone and should be unclaimed; its slots
// are then released. The attempt runs in a new goroutine if spawn, else
// in the caller's.
func (d *Dispatcher) begin(id string, ev *store.Event, ep *Endpoint, url string, cutoff time.Time, spawn bool) (unclaim bool) {
	var err error
	if ev == nil {
		ev, err = d.Store.Event(d.ctx, id)
	}
	switch {
	case errors.Is(err, store.ErrDamaged):
		// The store reported it once; it waits for an operator.
		d.release(id, url)
		return true
	case err != nil:
		if !errors.Is(err, store.ErrClosed) && !errors.Is(err, store.ErrUnavailable) {
			d.logger().Error("reading due webhook event failed", zap.String("event_id", id), zap.Error(err))
		}
		d.release(id, url)
		return true
	case ev.Delivery.State != store.DeliveryPending || ev.Delivery.NextAttemptAt.After(d.Now()):
		// Settled, or rescheduled by an attempt that ended since the
		// index was read.
		d.release(id, url)
		return true
	case ep == nil:
		// Its record goes through the recorder's group commit, like an
		// attempt's: a backlog of a profile without a webhook is settled
		// in a few synced writes, not one each, and not on this loop.
		if spawn {
			go func() {
				d.skip(ev)
				d.release(id, url)
			}()
		} else {
			d.skip(ev)
			d.release(id, url)
		}
	case spawn:
		go d.attempt(ev, ep, cutoff)
	default:
		d.attempt(ev, ep, cutoff)
	}
	return false
}

// startQueued starts a queued event whose slots sent took. One whose
// claim would run out before the endpoint's timeout is unclaimed instead.
func (d *Dispatcher) startQueued(q queued) {
	timeout := q.ep.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	left := time.Now().Add(timeout).After(q.cutoff)
	if left {
		d.release(q.id, q.ep.URL)
	}
	if left || d.begin(q.id, q.ev, q.ep, q.ep.URL, q.cutoff, false) {
		if err := d.Store.Unclaim(d.ctx, d.Owner, []string{q.id}); err != nil && !errors.Is(err, store.ErrClosed) {
			d.logger().Debug("unclaiming webhook event failed; its claim runs out with the lease", zap.String("event_id", q.id), zap.Error(err))
		}
	}
}

// interleave orders due events round-robin across profiles (the first of
// each, then the second of each, ...), so that when the total bound is
// reached no profile was served only because its name sorts first.
func interleave(due []store.Due) []store.Due {
	var order []string
	by := map[string][]store.Due{}
	for _, du := range due {
		if _, ok := by[du.Profile]; !ok {
			order = append(order, du.Profile)
		}
		by[du.Profile] = append(by[du.Profile], du)
	}
	if len(order) < 2 {
		return due
	}
	out := make([]store.Due, 0, len(due))
	for i := 0; len(out) < len(due); i++ {
		for _, p := range order {
			if i < len(by[p]) {
				out = append(out, by[p][i])
			}
		}
	}
	return out
}

// release frees the slots taken for an event: its sending slots, then
// (done) its place in flight.
func (d *Dispatcher) release(id, url string) {
	d.sent(url)
	d.done(id)
}

// sent frees the sending slots of an attempt whose answer is in, and
// hands them to the next event queued for the URL, if any. It reports
// whether the URL's queue runs low (the next pass should fill it).
func (d *Dispatcher) sent(url string) (low bool) {
	d.mu.Lock()
	d.sending--
	if url != "" {
		if d.perURL[url]--; d.perURL[url] <= 0 {
			delete(d.perURL, url)
		}
	}
	qs := d.queue[url]
	if len(qs) == 0 || d.stopping {
		d.mu.Unlock()
		return true
	}
	q := qs[0]
	if len(qs) == 1 {
		delete(d.queue, url)
	} else {
		d.queue[url] = qs[1:]
	}
	d.nqueued--
	delete(d.inflight, q.id) // take marks it again
	d.take(q.id, url)
	low = len(qs)-1 < d.PerEndpoint
	d.mu.Unlock()
	go d.startQueued(q)
	return low
}

// done ends an attempt whose outcome is recorded (or dropped).
func (d *Dispatcher) done(id string) {
	d.mu.Lock()
	delete(d.inflight, id)
	d.mu.Unlock()
	d.wg.Done()
}

// postpone moves events of profiles missing from the config back, a batch
// per write (one by one only if a record changed meanwhile); batches stay
// well under a transaction's size limit.
func (d *Dispatcher) postpone(ids []string) {
	for len(ids) > maxRecordBatch {
		d.postponeBatch(ids[:maxRecordBatch])
		ids = ids[maxRecordBatch:]
	}
	if len(ids) > 0 {
		d.postponeBatch(ids)
	}
}

func (d *Dispatcher) postponeBatch(ids []string) {
	at := d.Now().UTC().Add(unknownDelay)
	updates := make(map[string]store.Delivery, len(ids))
	for _, id := range ids {
		ev, err := d.Store.Event(d.ctx, id)
		if err != nil || ev.Delivery.State != store.DeliveryPending {
			continue
		}
		dl := ev.Delivery
		dl.NextAttemptAt = at
		updates[id] = dl
	}
	err := d.Store.SetDeliveries(d.ctx, updates)
	if errors.Is(err, store.ErrStateChanged) || errors.Is(err, store.ErrConflict) {
		for id, dl := range updates {
			_, err = d.Store.SetDelivery(d.ctx, id, dl)
			if err != nil && !errors.Is(err, store.ErrStateChanged) && !errors.Is(err, store.ErrConflict) {
				break
			}
			err = nil
		}
	}
	if err != nil && !errors.Is(err, store.ErrClosed) {
		d.logger().Error("postponing webhook events failed", zap.Int("events", len(updates)), zap.Error(err))
	}
}

// skip settles an event whose profile has no webhook.
func (d *Dispatcher) skip(ev *store.Event) {
	dl := ev.Delivery
	dl.State = store.DeliverySkipped
	dl.NextAttemptAt = time.Time{}
	dl.LastError = "profile has no webhook configured"
	metrics.Deliveries.WithLabelValues(ev.Intent.Profile, "skipped").Inc()
	if err := d.commit(ev.ID, dl); err != nil && !errors.Is(err, store.ErrStateChanged) {
		d.logger().Error("recording skipped webhook failed", zap.String("event_id", ev.ID), zap.Error(err))
	}
	d.notify(ev.ID, Result{Outcome: Retry})
}

// attempt sends ev and records the outcome; the send is cut at cutoff, so
// that the record lands before the claim's lease ends.
func (d *Dispatcher) attempt(ev *store.Event, ep *Endpoint, cutoff time.Time) {
	start := time.Now()
	// Send cuts the attempt at the endpoint's timeout; the cutoff needs a
	// deadline of its own only when it comes first.
	ctx, cancel := d.ctx, context.CancelFunc(func() {})
	timeout := ep.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if start.Add(timeout).After(cutoff) {
		ctx, cancel = context.WithDeadline(d.ctx, cutoff)
	}
	res := d.Sender.Send(ctx, ep, ev)
	cancel()
	ev.Delivery.LastLatencyMS = float64(time.Since(start).Microseconds()) / 1000 // record starts from ev.Delivery
	// The answer is in: the next request may go out while this outcome
	// waits for the group commit. The event stays in flight (not
	// started again here) and claimed (not by another instance) until
	// its record is durable.
	low := d.sent(ep.URL)
	stopping := d.ctx.Err() != nil
	if !stopping {
		if low {
			d.Kick() // a worker is free and its queue runs low: more may be due
		}
		d.record(ev, ep, res)
	} else {
		d.mu.Lock()
		d.cancelled = append(d.cancelled, ev.ID)
		d.mu.Unlock()
	}
	d.done(ev.ID)
	d.notify(ev.ID, res)
}

func (d *Dispatcher) record(ev *store.Event, ep *Endpoint, res Result) {
	now := d.Now().UTC()
	dl := ev.Delivery
	dl.Attempts++
	dl.LastAttemptAt = now
	dl.LastStatus = res.Status
	dl.LastError = ""
	if res.Err != nil {
		dl.LastError = res.Err.Error()
	}
	// The fields are built only for a line the logger writes: a
	// successful attempt's line is Info, which a busy dispatcher's
	// operator may have turned off.
	fields := func() []zap.Field {
		return []zap.Field{
			zap.String("event_id", ev.ID), zap.String("event", ev.Type), zap.String("intent_id", ev.Intent.ID),
			zap.String("profile", ev.Intent.Profile), zap.String("key", ev.Intent.Key),
			zap.Int("attempt", dl.Attempts), zap.Int("status", res.Status),
		}
	}
	outcome := "retry"
	defer func() { metrics.Deliveries.WithLabelValues(ev.Intent.Profile, outcome).Inc() }()
	switch res.Outcome {
	case Delivered:
		outcome = "delivered"
		dl.State, dl.DeliveredAt, dl.NextAttemptAt, dl.Response = store.DeliveryDelivered, now, time.Time{}, res.JSON
		if ce := d.logger().Check(zap.InfoLevel, "webhook delivered"); ce != nil {
			ce.Write(fields()...)
		}
	case Gone:
		outcome = "dead"
		dl.State, dl.NextAttemptAt, dl.LastError = store.DeliveryDead, time.Time{}, "endpoint answered 410 Gone"
		d.logger().Warn("webhook dead: endpoint gone", fields()...)
	default:
		delay, ok := NextDelay(ep.Schedule, dl.Attempts, res.RetryAfter)
		if ok {
			dl.State, dl.NextAttemptAt = store.DeliveryPending, now.Add(delay)
			d.logger().Warn("webhook attempt failed; will retry", append(fields(), zap.Duration("retry_in", delay), zap.String("error", dl.LastError))...)
		} else {
			outcome = "dead"
			dl.State, dl.NextAttemptAt = store.DeliveryDead, time.Time{}
			d.logger().Error("webhook dead: retries exhausted", append(fields(), zap.String("error", dl.LastError))...)
		}
	}
	switch err := d.commit(ev.ID, dl); {
	case errors.Is(err, store.ErrStateChanged):
		// The record changed since the attempt began (an operator asked
		// for redelivery): the newer record stands, and this one is dropped.
		d.logger().Info("webhook record changed during the attempt; keeping the newer one", zap.String("event_id", ev.ID))
		// The refused write did not end the claim: end it, so that the
		// newer record (due again, say) is acted on now, not after the lease.
		if err := d.Store.Unclaim(d.ctx, d.Owner, []string{ev.ID}); err != nil && !errors.Is(err, store.ErrClosed) {
			d.logger().Debug("unclaiming webhook event failed; its claim runs out with the lease", zap.String("event_id", ev.ID), zap.Error(err))
		}
	case err != nil:
		// The event stays due as it was: it will be sent again, which
		// at-least-once delivery allows and receivers deduplicate.
		d.logger().Error("recording webhook attempt failed", zap.String("event_id", ev.ID), zap.Error(err))
	}
}

func (d *Dispatcher) notify(id string, res Result) {
	d.mu.Lock()
	ws := d.waiters[id]
	delete(d.waiters, id)
	d.mu.Unlock()
	for _, ch := range ws {
		ch <- res
	}
}

// Await waits, until ctx ends, for the first delivery attempt of an event
// and returns the endpoint's JSON answer if that attempt succeeded with
// one. An event already delivered returns its recorded answer at once.
func (d *Dispatcher) Await(ctx context.Context, id string) (json.RawMessage, bool) {
	ev, err := d.Store.Event(ctx, id)
	if err != nil {
		return nil, false
	}
	if r, ok, final := settled(ev); final {
		return r, ok
	}
	ch := make(chan Result, 1)
	d.mu.Lock()
	d.waiters[id] = append(d.waiters[id], ch)
	d.mu.Unlock()
	// The attempt may have ended between the read and the registration.
	if ev, err := d.Store.Event(ctx, id); err == nil {
		if r, ok, final := settled(ev); final {
			d.unwait(id, ch)
			return r, ok
		}
	}
	d.Kick()
	select {
	case res := <-ch:
		return res.JSON, res.Outcome == Delivered && len(res.JSON) > 0
	case <-ctx.Done():
		d.unwait(id, ch)
		return nil, false
	}
}

// settled reports whether an event's first attempt is over, and its answer.
func settled(ev *store.Event) (json.RawMessage, bool, bool) {
	switch {
	case ev.Delivery.State == store.DeliveryDelivered:
		return ev.Delivery.Response, len(ev.Delivery.Response) > 0, true
	case ev.Delivery.State != store.DeliveryPending || ev.Delivery.Attempts > 0:
		return nil, false, true
	}
	return nil, false, false
}

func (d *Dispatcher) unwait(id string, ch chan Result) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ws := d.waiters[id]
	for i, w := range ws {
		if w == ch {
			d.waiters[id] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(d.waiters[id]) == 0 {
		delete(d.waiters, id)
	}
}

// Redeliver makes dead (or skipped, or delivered) events due again now.
// An attempt in flight meanwhile does not overwrite the request: its
// record is refused by the version check (see store.Delivery.Version).
func (d *Dispatcher) Redeliver(ctx context.Context, id string) (*store.Event, error) {
	for try := 0; ; try++ {
		ev, err := d.Store.Event(ctx, id)
		if err != nil {
			return nil, err
		}
		dl := ev.Delivery
		dl.State, dl.NextAttemptAt, dl.Attempts = store.DeliveryPending, d.Now().UTC(), 0
		out, err := d.Store.SetDelivery(ctx, id, dl)
		if (errors.Is(err, store.ErrStateChanged) || errors.Is(err, store.ErrConflict)) && try < 10 {
			continue // an attempt's record landed in between: read again
		}
		if err == nil {
			d.logger().Info("webhook redelivery requested", zap.String("event_id", id), zap.String("intent_id", ev.Intent.ID))
			d.Kick()
		}
		return out, err
	}
}
