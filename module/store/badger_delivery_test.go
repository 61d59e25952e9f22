package store

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestMarshalEventMatchesJSON: the hand-written encoding of an event (the
// record every delivery attempt rewrites) is byte-identical to
// json.Marshal's, for plain and awkward values alike, so records read the
// same whichever wrote them.
func TestMarshalEventMatchesJSON(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 123456789, time.UTC)
	paris := time.FixedZone("CET", 3600)
	in := Intent{ID: "upl_01", Profile: "images", Bucket: "uploads", Key: "images/upl_01.png", ContentType: "image/png",
		MaxSize: 100, Metadata: json.RawMessage(`{"album":"x"}`), Status: StatusCompleted, CreatedAt: now, ExpiresAt: now, UpdatedAt: now}
	full := &Event{ID: "evt_01", Type: EventCompleted, CreatedAt: now.In(paris), Intent: in, Delivery: Delivery{
		State: DeliveryDelivered, Attempts: 3, NextAttemptAt: now, LastAttemptAt: now.In(paris), LastStatus: 200,
		LastError: "endpoint answered 500", LastLatencyMS: 1.234, DeliveredAt: now, Response: json.RawMessage(`{"thumb":"/t/1.png","n":[1,{"a":null}]}`),
		Version: 7}, Damaged: "broken"}
	cases := []*Event{
		{},
		{ID: "e", Delivery: Delivery{State: DeliveryPending, NextAttemptAt: now, Version: 1}},
		full,
		{ID: `a"b\c<d>&e`, Type: "t\u2028", Delivery: Delivery{LastError: "naïve\x01<&>", Response: json.RawMessage(`{"a": "b"}`)}},
		{ID: "r", Delivery: Delivery{Response: json.RawMessage(`{"a":"<b>&"}`)}},
		{ID: "r", Delivery: Delivery{Response: json.RawMessage(`{"a":"é"}`)}},
		{ID: "f", Delivery: Delivery{LastLatencyMS: 1e-7}},
		{ID: "f", Delivery: Delivery{LastLatencyMS: 1e21}},
		{ID: "f", Delivery: Delivery{LastLatencyMS: -0.5}},
		{ID: "f", Delivery: Delivery{LastLatencyMS: 123456789.000001}},
		{ID: "y", CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "y", Delivery: Delivery{DeliveredAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", "Z", "0", " ", "\"", "\\", "<", "&", "é", "\u2028", "\x00", "\n", "/", "\xff"}
	str := func() string {
		var b bytes.Buffer
		for range rnd.IntN(8) {
			b.WriteString(alphabet[rnd.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 500 {
		ev := *full
		ev.ID, ev.Type, ev.Damaged = str(), str(), str()
		ev.Intent.Key, ev.Intent.Reason = str(), str()
		ev.Delivery.State, ev.Delivery.LastError = DeliveryState(str()), str()
		ev.Delivery.Attempts, ev.Delivery.LastStatus, ev.Delivery.Version = rnd.IntN(3)-1, rnd.IntN(600)*rnd.IntN(2), rnd.Int64N(3)
		ev.Delivery.LastLatencyMS = float64(rnd.IntN(3)) * math.Pow(10, float64(rnd.IntN(40)-15)) * rnd.Float64()
		if rnd.IntN(2) == 0 {
			ev.Delivery.NextAttemptAt, ev.Delivery.DeliveredAt, ev.Delivery.Response = time.Time{}, time.Time{}, nil
		}
		if m, err := json.Marshal(map[string]string{str(): str()}); err == nil && rnd.IntN(3) > 0 {
			ev.Delivery.Response = m
		}
		cases = append(cases, &ev)
	}
	for i, ev := range cases {
		want, werr := json.Marshal(ev)
		got, gerr := marshalEvent(ev)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("case %d:\ngot  %s (%v)\nwant %s (%v)", i, got, gerr, want, werr)
		}
		want, werr = json.Marshal(&ev.Delivery)
		got, gerr = marshalDelivery(&ev.Delivery)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("case %d, delivery record:\ngot  %s (%v)\nwant %s (%v)", i, got, gerr, want, werr)
		}
	}
}

// TestSetDeliveriesRereadsEventChangedSinceClaim: an event whose stored
// body changed since its claim (here written raw, leaving the claim in
// place; no product path rewrites a body) keeps that body when the
// claimed copy's record is written: a delivery write never rewrites the
// event's body, so nothing of it is lost.
func TestSetDeliveriesRereadsEventChangedSinceClaim(t *testing.T) {
	db, err := OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	in := &Intent{ID: "a", Profile: "p", Bucket: "b", Key: "k/a", ContentType: "image/png", MaxSize: 10,
		Status: StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := db.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Update(ctx, "a", StatusPending, func(x *Intent) (Event, error) {
		x.Status = StatusCompleted
		return Event{ID: "ea", Type: EventCompleted, CreatedAt: now}, nil
	}); err != nil {
		t.Fatal(err)
	}
	due, err := db.ClaimDue(ctx, "A", now.Add(time.Second), time.Minute, 10)
	if err != nil || len(due) != 1 || due[0].Event == nil {
		t.Fatalf("claim %+v %v: want ea with its event", due, err)
	}
	changed := *due[0].Event
	changed.Intent.Key = "k/changed-since-the-claim"
	val, err := json.Marshal(&changed)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteRawEvent(db, "ea", val); err != nil {
		t.Fatal(err)
	}
	dl := changed.Delivery
	dl.State, dl.NextAttemptAt = DeliveryDelivered, time.Time{}
	if err := db.SetDeliveries(ctx, map[string]Delivery{"ea": dl}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Event(ctx, "ea")
	if err != nil {
		t.Fatal(err)
	}
	if got.Intent.Key != changed.Intent.Key || got.Delivery.State != DeliveryDelivered {
		t.Fatalf("record written from the claimed copy: key %q state %s, want %q delivered", got.Intent.Key, got.Delivery.State, changed.Intent.Key)
	}
}
