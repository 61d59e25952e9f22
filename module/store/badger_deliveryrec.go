package store

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/dgraph-io/badger/v4"
)

// Delivery records apart from their events. An event's body (id, type,
// creation time, intent snapshot) never changes once written; only its
// Delivery does, once per attempt. So a delivery record is written under
// "v/" + event id, a small value of its own, and the event under "o/"
// keeps the Delivery it was written with: the record under "v/", when
// there is one, is the current one and replaces it on every read.
// Stores written before this layout have no "v/" keys: their events'
// embedded records are the current ones, read and replaced the same way.
var deliveryPrefix = []byte("v/")

func deliveryKey(id string) []byte { return prefixed(deliveryPrefix, id) }

// dueApart is the value of a due index entry written with a delivery
// record apart ("v/"): ClaimDue reads that record only for the events
// whose entry has it. An entry written with its event (a transition) or
// by an earlier version is empty: the event has no record apart (every
// write of one also writes the entry, if the event stays due), and its
// embedded record is the current one. Whatever the entry says, the
// write of the next record reads the record apart again in its
// transaction and refuses a version that is not the stored one.
var dueApart = []byte{'v'}

// marshalDelivery is json.Marshal(d), byte for byte (see marshalEvent).
func marshalDelivery(d *Delivery) ([]byte, error) {
	if !plainDelivery(d) {
		return json.Marshal(d)
	}
	return appendDelivery(make([]byte, 0, 192+len(d.Response)+len(d.LastError)), d), nil
}

// plainDelivery reports whether appendDelivery writes d as json.Marshal does.
func plainDelivery(d *Delivery) bool {
	return (d.NextAttemptAt.IsZero() || jsonTime(d.NextAttemptAt)) &&
		(d.LastAttemptAt.IsZero() || jsonTime(d.LastAttemptAt)) && (d.DeliveredAt.IsZero() || jsonTime(d.DeliveredAt)) &&
		plainJSON(d.Response) && plainFloat(d.LastLatencyMS)
}

// appendDelivery appends d's JSON object; plainDelivery(d) must hold.
func appendDelivery(b []byte, d *Delivery) []byte {
	b = appendString(append(b, `{"state":`...), string(d.State))
	b = strconv.AppendInt(append(b, `,"attempts":`...), int64(d.Attempts), 10)
	if !d.NextAttemptAt.IsZero() {
		b = appendTime(append(b, `,"next_attempt_at":`...), d.NextAttemptAt)
	}
	if !d.LastAttemptAt.IsZero() {
		b = appendTime(append(b, `,"last_attempt_at":`...), d.LastAttemptAt)
	}
	if d.LastStatus != 0 {
		b = strconv.AppendInt(append(b, `,"last_status":`...), int64(d.LastStatus), 10)
	}
	if d.LastError != "" {
		b = appendString(append(b, `,"last_error":`...), d.LastError)
	}
	if d.LastLatencyMS != 0 {
		b = strconv.AppendFloat(append(b, `,"last_latency_ms":`...), d.LastLatencyMS, 'f', -1, 64)
	}
	if !d.DeliveredAt.IsZero() {
		b = appendTime(append(b, `,"delivered_at":`...), d.DeliveredAt)
	}
	if len(d.Response) > 0 {
		b = append(append(b, `,"response":`...), d.Response...)
	}
	if d.Version != 0 {
		b = strconv.AppendInt(append(b, `,"version":`...), d.Version, 10)
	}
	return append(b, '}')
}

// decodeDelivery decodes the delivery record of event id from item.
func decodeDelivery(item *badger.Item, id string) (Delivery, error) {
	var d Delivery
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &d) }); err != nil {
		return d, &damagedError{kind: "event", id: id, err: err}
	}
	return d, nil
}

// overlayDelivery replaces ev's embedded delivery record with the one
// under "v/", if there is one.
func overlayDelivery(txn *badger.Txn, ev *Event) error {
	item, err := txn.Get(deliveryKey(ev.ID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	d, err := decodeDelivery(item, ev.ID)
	if err != nil {
		return err
	}
	ev.Delivery = d
	return nil
}

// currentDelivery reads, in txn, the current delivery record of event id
// and an event to take its profile and creation time from (and, for
// SetDelivery, to return): the claimed copy c.ev when there is one (those
// fields never change), else the stored event. The read of the record's
// key is the transaction's, so a concurrent delivery write conflicts
// (every one writes that key, and Prune deletes it). An event without a
// record apart (a new one, or one written by an earlier version) has its
// current record inside: the claimed copy's, as the event's body is
// never written again once created (a store of an earlier version is
// not written by one while this one has it open).
func currentDelivery(txn *badger.Txn, id string, c claimRead) (*Event, error) {
	item, err := txn.Get(deliveryKey(id))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		if c.ev == nil {
			return getJSON[Event](txn, outboxKey(id), "event", id)
		}
		ev := *c.ev
		return &ev, nil
	case err != nil:
		return nil, err
	}
	d, err := decodeDelivery(item, id)
	if err != nil {
		return nil, err
	}
	var ev Event
	if c.ev != nil {
		ev = *c.ev
	} else {
		body, err := getJSON[Event](txn, outboxKey(id), "event", id)
		if err != nil {
			return nil, err
		}
		ev = *body
	}
	ev.Delivery = d
	return &ev, nil
}
