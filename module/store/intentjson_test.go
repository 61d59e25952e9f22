package store

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestMarshalIntentMatchesJSON: the hand-written encoding of an intent is
// byte-identical to json.Marshal's, so records written before and after
// it read the same, for plain and awkward values alike.
func TestMarshalIntentMatchesJSON(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 123456789, time.UTC)
	paris := time.FixedZone("CET", 3600)
	full := &Intent{
		ID: "upl_01", Profile: "images", Bucket: "uploads", Key: "images/2026/upl_01.png", Filename: "photo.png",
		ContentType: "image/png", Size: 12, MaxSize: 100, Metadata: json.RawMessage(`{"album":"x","n":[1,2,{"a":null}]}`),
		Identity: "alice", Quota: &Quota{Subject: "alice", Reserved: 100, BucketSeconds: 3600}, ChecksumSHA256: "abc=",
		UploadID: "up1", PartSize: 5 << 20, PartCount: 3, Status: StatusCompleted,
		CreatedAt: now, ExpiresAt: now.Add(time.Minute), UpdatedAt: now.In(paris),
		ObjectSize: 12, ObjectType: "image/png", ETag: "e1", Reason: "r", Detail: "d", VerifiedAt: now,
		EventID: "ev1", Events: []string{"ev0", "ev1"}, Settled: true, Rejecting: true, StagingKey: "staging/k",
		Promoting: true, Damaged: "broken", Width: 640, Height: 480,
	}
	cases := []*Intent{
		{},
		{ID: "upl_02", Status: StatusPending, CreatedAt: now, ExpiresAt: now, UpdatedAt: now},
		full,
		{ID: `a"b\c<d>&e`, Filename: "naïve\u2028\x01.png", Key: "k\xffbad", Metadata: json.RawMessage(`{"a": "b"}`)},
		{ID: "m", Metadata: json.RawMessage(`{"a":"<b>&"}`), Quota: &Quota{Subject: "s"}},
		{ID: "m", Metadata: json.RawMessage(`{"a":"é\u2028"}`), CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 1000, paris)},
		{ID: "m", Metadata: json.RawMessage(`{"a":1}`), Events: []string{}},
		{ID: "y", CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", " ", "\"", "\\", "<", "&", "é", "\u2028", "\x00", "\n", "/", "\xff"}
	str := func() string {
		var b bytes.Buffer
		for range rnd.IntN(8) {
			b.WriteString(alphabet[rnd.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 500 {
		in := *full
		in.ID, in.Key, in.Filename, in.Reason, in.Detail, in.Identity = str(), str(), str(), str(), str(), str()
		in.Size, in.ObjectSize, in.Width = rnd.Int64N(3)-1, rnd.Int64N(2), rnd.IntN(2)
		in.Settled, in.Promoting = rnd.IntN(2) == 0, rnd.IntN(2) == 0
		if rnd.IntN(2) == 0 {
			in.Quota, in.Events, in.VerifiedAt = nil, nil, time.Time{}
		}
		if m, err := json.Marshal(map[string]string{str(): str()}); err == nil && rnd.IntN(3) > 0 {
			in.Metadata = m
		} else {
			in.Metadata = nil
		}
		cases = append(cases, &in)
	}
	for i, in := range cases {
		want, werr := json.Marshal(in)
		got, gerr := marshalIntent(in)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("case %d:\ngot  %s (%v)\nwant %s (%v)", i, got, gerr, want, werr)
		}
	}
}

// BenchmarkMarshalIntent compares encoding a pending intent by hand with
// json.Marshal.
func BenchmarkMarshalIntent(b *testing.B) {
	now := time.Now().UTC()
	in := &Intent{ID: "upl_01jd5m3y4c8k2q7r9t0v", Profile: "images", Bucket: "uploads", Key: "images/2026/12/01/upl_01jd5m3y4c8k2q7r9t0v.png",
		Filename: "photo.png", ContentType: "image/png", Size: 123456, MaxSize: 123456, Metadata: json.RawMessage(`{"album":"holidays"}`),
		Identity: "alice", Status: StatusPending, CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute), UpdatedAt: now}
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(in)
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = marshalIntent(in)
		}
	})
}

// TestMarshalIntentCoversEveryField: an Intent with every field set (by
// reflection, so a field added later is set too) encodes as json.Marshal
// encodes it. A field the hand-written encoder forgets would be lost on
// every write: the malware scan's fields once were.
func TestMarshalIntentCoversEveryField(t *testing.T) {
	var in Intent
	v := reflect.ValueOf(&in).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.CanSet() {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("s" + v.Type().Field(i).Name)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Slice:
			if f.Type() == reflect.TypeOf(json.RawMessage(nil)) {
				f.Set(reflect.ValueOf(json.RawMessage(`{"a":1}`)))
			} else if f.Type().Elem().Kind() == reflect.String {
				f.Set(reflect.ValueOf([]string{"x", "y"}))
			} else {
				t.Fatalf("field %s: set it in this test", v.Type().Field(i).Name)
			}
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Struct:
			if f.Type() != reflect.TypeOf(time.Time{}) {
				t.Fatalf("field %s: set it in this test", v.Type().Field(i).Name)
			}
			f.Set(reflect.ValueOf(time.Date(2026, 12, 1, 12, 0, i, 0, time.UTC)))
		default:
			t.Fatalf("field %s of kind %s: set it in this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	want, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := marshalIntent(&in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("hand-written encoding differs from json.Marshal:\n got  %s\n want %s", got, want)
	}
}
