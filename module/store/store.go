// Package store keeps upload intents and their outbox of events.
//
// An intent is the sidecar's record of one permitted upload: created before
// the presigned policy leaves the sidecar, moved through its life by
// transitions, and never changed without the event that announces the change.
// The Store interface is the contract; Badger implements it in this package,
// and other implementations (PostgreSQL for several Caddy instances) must keep
// the same guarantees.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Status is where an intent stands in its life.
type Status string

// The statuses of an intent. Only pending intents change; the others are final.
const (
	StatusPending   Status = "pending"
	StatusCompleted Status = "completed"
	StatusRejected  Status = "rejected"
	StatusFailed    Status = "failed"
	StatusExpired   Status = "expired"
)

// Final reports whether no further transition leaves s.
func (s Status) Final() bool { return s != StatusPending }

// Event types written to the outbox, one per transition.
const (
	EventCompleted = "upload.completed"
	EventRejected  = "upload.rejected"
	EventFailed    = "upload.failed"
	EventExpired   = "upload.expired"
	// EventQuarantined announces a rejection by the malware scan: the
	// object was moved to the quarantine prefix or deleted.
	EventQuarantined = "upload.quarantined"
)

// Sentinel errors every Store implementation returns.
var (
	// ErrNotFound is returned when no intent has the given id.
	ErrNotFound = errors.New("intent not found")
	// ErrExists is returned by Create when the id is already taken.
	ErrExists = errors.New("intent already exists")
	// ErrStateChanged is returned by Transition when the intent is no longer
	// in the status the caller expected: someone else moved it first.
	ErrStateChanged = errors.New("intent status changed")
	// ErrConflict is returned when a concurrent transaction touched the same
	// intent; the caller reloads and decides again.
	ErrConflict = errors.New("concurrent update of intent")
	// ErrClosed is returned by every method called after Close (Close
	// itself returns nil when called again).
	ErrClosed = errors.New("store closed")
	// ErrUnavailable is returned (wrapping the cause) when the store cannot
	// be reached or did not answer in time: nothing is known to be written,
	// and the caller may try again later.
	ErrUnavailable = errors.New("store unavailable")
	// ErrDamaged is wrapped by the error of a read that found a record it
	// cannot decode (a torn or corrupted value). Listings do not fail on
	// such a record: they return it as a stub with Damaged set and go on.
	ErrDamaged = errors.New("damaged record")
)

// Intent is one permitted upload and what became of it.
type Intent struct {
	ID      string `json:"id"`
	Profile string `json:"profile"`
	Bucket  string `json:"bucket"`
	Key     string `json:"key"`

	// What the client declared when it asked for permission.
	Filename    string          `json:"filename,omitempty"`
	ContentType string          `json:"content_type"`
	Size        int64           `json:"size,omitempty"`
	MaxSize     int64           `json:"max_size"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	Identity    string          `json:"identity,omitempty"`
	// Quota, when set, is the intent's charge against its subject's
	// usage (see QuotaLimits): Create checks and counts it, the transition
	// out of pending releases it.
	Quota *Quota `json:"quota,omitempty"`
	// ChecksumSHA256 is the client's declared SHA-256 of the file
	// (base64); the grant binds it and complete compares it with the
	// store's.
	ChecksumSHA256 string `json:"checksum_sha256,omitempty"`

	// A multipart upload: its S3 upload id and the part layout the
	// declared size (or the maximum) allows.
	UploadID  string `json:"upload_id,omitempty"`
	PartSize  int64  `json:"part_size,omitempty"`
	PartCount int    `json:"part_count,omitempty"`

	Status    Status    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	UpdatedAt time.Time `json:"updated_at"`

	// What the sidecar found in the bucket (completed or rejected intents).
	ObjectSize int64     `json:"object_size,omitempty"`
	ObjectType string    `json:"object_type,omitempty"`
	ETag       string    `json:"etag,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Detail     string    `json:"detail,omitempty"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	// EventID is the outbox event of the intent's last transition; Events
	// lists all of them, oldest first.
	EventID string   `json:"event_id,omitempty"`
	Events  []string `json:"events,omitempty"`
	// Settled marks a final intent whose object can no longer change
	// through this product: its policy expired (and the grace passed)
	// before the intent was finalized, or the post-expiry re-check ran.
	Settled bool `json:"settled,omitempty"`
	// Rejecting marks a rejection decided (Reason and Detail say why) but
	// not yet carried out: the object may still have to be deleted.
	Rejecting bool `json:"rejecting,omitempty"`
	// StagingKey, when set, is the key the grant named: the object is
	// uploaded there and, once verified, copied to Key (promotion).
	StagingKey string `json:"staging_key,omitempty"`
	// Promoting marks a promotion decided (ETag is the verified staging
	// object's) but not yet carried out: the copy to Key may still have
	// to be made.
	Promoting bool `json:"promoting,omitempty"`

	// Damaged is set only on the stubs List and ListStatus return for a
	// record that cannot be read: it says why, and ID is the only other
	// field set. It is never stored; callers skip such stubs.
	Damaged string `json:"damaged,omitempty"`
	// Width and Height of an image whose header the sidecar read.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Scanning marks a pending intent whose verified object waits for
	// the malware scan (held there while the scanner is unreachable and
	// the profile fails closed).
	Scanning bool `json:"scanning,omitempty"`
	// Scan is the malware scan's result: "clean", "found" (Threat names
	// the signature) or "skipped" (scanner unreachable, fail-open).
	Scan   string `json:"scan,omitempty"`
	Threat string `json:"threat,omitempty"`
	// QuarantineKey is where an infected object was moved (empty when it
	// was deleted).
	QuarantineKey string `json:"quarantine_key,omitempty"`
}

// Index is a listing of intents by one of the store's indexes.
type Index string

// The indexes an implementation keeps, each ordered by its time.
const (
	// ByExpiry lists pending intents by policy expiry.
	ByExpiry Index = "expiry"
	// ByRecheck lists final, unsettled intents by policy expiry: after it,
	// their object is checked once more.
	ByRecheck Index = "recheck"
	// ByFinished lists settled intents by the time of their last change,
	// for retention.
	ByFinished Index = "finished"
)

// Cursor continues a listing where the previous page ended; nil starts it.
type Cursor []byte

// Event is an outbox entry: the announcement of one transition, and the
// state of its delivery.
type Event struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	// Intent is a snapshot of the intent right after the transition.
	Intent   Intent   `json:"intent"`
	Delivery Delivery `json:"delivery"`
	// Damaged is set only on the stubs Events returns for a record that
	// cannot be read (see Intent.Damaged); ID is the only other field set.
	Damaged string `json:"damaged,omitempty"`
}

// DeliveryState is where an event's delivery stands.
type DeliveryState string

// Delivery states. Pending events are due at NextAttemptAt; the others are
// final until an operator asks for redelivery.
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	// DeliveryDead: retries exhausted, or the endpoint answered 410 Gone.
	DeliveryDead DeliveryState = "dead"
	// DeliverySkipped: the profile has no webhook configured.
	DeliverySkipped DeliveryState = "skipped"
)

// Due names an event whose delivery attempt is due.
type Due struct {
	EventID string
	Profile string
	// Event, when not nil, is the event as ClaimDue read it while
	// claiming it, so the caller need not read it again; an
	// implementation may leave it nil (the caller then calls Event).
	Event *Event `db:"-"`
}

// String is "{EventID Profile}", the event it names, whether or not the
// Due carries the event.
func (d Due) String() string { return "{" + d.EventID + " " + d.Profile + "}" }

// Delivery is the record of an event's delivery attempts.
type Delivery struct {
	State         DeliveryState `json:"state"`
	Attempts      int           `json:"attempts"`
	NextAttemptAt time.Time     `json:"next_attempt_at,omitzero"`
	LastAttemptAt time.Time     `json:"last_attempt_at,omitzero"`
	LastStatus    int           `json:"last_status,omitempty"`
	LastError     string        `json:"last_error,omitempty"`
	// LastLatencyMS is how long the last attempt took, request to answer.
	LastLatencyMS float64   `json:"last_latency_ms,omitempty"`
	DeliveredAt   time.Time `json:"delivered_at,omitzero"`
	// Response is the endpoint's JSON answer to the successful attempt,
	// when it was small enough to keep.
	Response json.RawMessage `json:"response,omitempty"`
	// Version counts the writes of this record: Update writes version 1,
	// and each SetDelivery stores the stored version plus one. A
	// SetDelivery whose Version is not 0 and not the stored one is
	// refused, so a record built from an old read (an attempt that began
	// before an operator's redelivery) cannot overwrite a newer one.
	// Version 0 writes unconditionally (records of earlier versions read
	// as 0, and so do records built from scratch).
	Version int64 `json:"version,omitempty"`
}

// Transition decides a change of one intent. It is called inside the store's
// transaction with a copy of the intent in its current status; it mutates
// that copy and returns the event that announces the change. Returning an
// error aborts the transaction and leaves the intent as it was.
type Transition func(in *Intent) (Event, error)

// Store keeps intents and the outbox.
//
// Every method is safe for concurrent use. Implementations must make Create
// durable before returning, and must write a transition and its event in one
// atomic, durable step.
type Store interface {
	// Create stores a new pending intent. ErrExists if the id is taken.
	Create(ctx context.Context, in *Intent) error
	// Get returns the intent with the id, or ErrNotFound.
	Get(ctx context.Context, id string) (*Intent, error)
	// Update applies t to the intent if its status is still from, and writes
	// the intent together with the event t returns. It returns the updated
	// intent; ErrNotFound, ErrStateChanged (status is no longer from, nothing
	// written) or ErrConflict (a concurrent transaction won) otherwise.
	Update(ctx context.Context, id string, from Status, t Transition) (*Intent, error)
	// UpdateBatch applies each item as Update would, and writes the ones
	// that succeed in few durable steps (one per group of items) instead
	// of one each: each item's intent and event are still written
	// atomically, and nothing is returned before every written item is
	// durable. Each item's outcome is in its Out and Err (Update's
	// errors; a transition's own error fails that item only). The error
	// returned, if any, is a store error that failed whole groups
	// (ErrUnavailable, ErrClosed, ErrFull...), which their items carry too.
	UpdateBatch(ctx context.Context, ups []BatchUpdate) error
	// Annotate changes an intent's fields, if its status is still from,
	// without changing its status, and so without an event: it records a
	// decision before the side effect that carries it out (a rejection
	// before the object's deletion), so a crash in between cannot lose the
	// decision, or marks an intent settled. ErrNotFound or ErrStateChanged
	// as for Update.
	Annotate(ctx context.Context, id string, from Status, fn func(*Intent)) (*Intent, error)
	// List returns up to limit intents of an index whose time is before t,
	// earliest first, and the cursor of the next page (nil at the end).
	// An intent the index names but that cannot be read (ErrDamaged, or
	// missing) is returned as a stub with only ID and Damaged set, counts
	// toward limit, and is reported once (logged and counted in a metric)
	// by the implementation; the listing goes on past it.
	List(ctx context.Context, idx Index, t time.Time, after Cursor, limit int) ([]*Intent, Cursor, error)
	// ListStatus returns up to limit intents with the status (and the
	// profile, if not empty), in id order, and the next page's cursor.
	// Unreadable intents are returned as stubs, as by List.
	ListStatus(ctx context.Context, status Status, profile string, after Cursor, limit int) ([]*Intent, Cursor, error)
	// Prune deletes a settled intent and its events. ErrStateChanged if it
	// is not settled or one of its events is still pending delivery.
	Prune(ctx context.Context, id string) error
	// OutboxStats counts events pending delivery and returns the creation
	// time of the oldest (zero when none). It is called on every metrics
	// scrape, so its cost must not grow with the number of pending events
	// (a counter and an index by creation time, or a cached value at most
	// a few seconds old).
	OutboxStats(ctx context.Context) (pending int, oldest time.Time, err error)
	// Events lists up to limit outbox events in the order they were
	// written, starting after the event id after ("" from the start), and
	// only those in state (every state if empty). An event that cannot be
	// read is returned as a stub with only ID and Damaged set, whatever
	// state was asked for (an implementation that keeps the state apart
	// from the record, as PostgreSQL does, lists it under that state),
	// and reported once, as by List.
	Events(ctx context.Context, state DeliveryState, after string, limit int) ([]Event, error)
	// Event returns one outbox event, or ErrNotFound.
	Event(ctx context.Context, id string) (*Event, error)
	// DueEvents lists pending events due at or before t, by id and
	// profile: for every profile that has due events, up to perProfile of
	// them, that profile's earliest first (profiles in any order). One
	// profile's backlog therefore never hides another's due events. It
	// reads an index keyed by profile then due time only, so its cost
	// grows with perProfile times the number of profiles with due events,
	// not with the backlog.
	DueEvents(ctx context.Context, t time.Time, perProfile int) ([]Due, error)
	// ClaimDue claims due events for owner, one instance of a fleet: it
	// lists what DueEvents would list at t, less the events under a live
	// claim (any owner's, until its claim_until), and marks each returned
	// event claimed by owner until t+lease, in one atomic step. Two owners
	// never hold a live claim on one event; a claim whose lease ran out
	// (its owner crashed or stalled) is taken over by the next ClaimDue.
	// A new delivery record (SetDelivery, SetDeliveries) ends the claim,
	// and so does Unclaim. The lease must outlive an attempt: the caller
	// sizes it above the longest attempt it may start under it.
	ClaimDue(ctx context.Context, owner string, t time.Time, lease time.Duration, perProfile int) ([]Due, error)
	// Unclaim ends owner's claims on the events (claims of other owners,
	// and events not claimed, are left alone): events claimed but not
	// attempted become claimable at once instead of after the lease.
	Unclaim(ctx context.Context, owner string, ids []string) error
	// AcquireLease takes or renews the named lease for owner for ttl, and
	// reports whether owner holds it: true if it was free, expired or
	// already owner's; false while another owner's lease runs. Leases are
	// timed by one clock for every instance sharing the store.
	AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	// ReleaseLease gives up owner's lease (nothing if another owner holds
	// it), so the next instance to ask takes it at once.
	ReleaseLease(ctx context.Context, name, owner string) error
	// SetDelivery replaces an event's delivery record (and its place in the
	// due index) in one step, if d.Version is 0 or the stored record's
	// Version; the record is stored with the stored Version plus one and
	// returned; the event's claim, if any, ends. ErrNotFound if there is no such event, ErrStateChanged
	// (nothing written) if the version differs: the caller reads again
	// and decides.
	SetDelivery(ctx context.Context, id string, d Delivery) (*Event, error)
	// SetDeliveries does SetDelivery for many events in one atomic, durable
	// step: the group commit of a busy dispatcher. On error (ErrStateChanged
	// if any version differs) none is written.
	SetDeliveries(ctx context.Context, updates map[string]Delivery) error
	// Close releases the store. It is safe to call while other methods
	// are running: they finish or return ErrClosed.
	Close() error
}
