package store

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestCreateWritesWhatPutIntentWrites: the group commit's own write of a
// new intent (putNewIntent, one buffer for key, index keys and record)
// stores exactly the keys and values putIntent(txn, nil, in) stores, for
// intents written alone and in concurrent batches, plain and with
// metadata that the hand-written encoder leaves to json.Marshal.
func TestCreateWritesWhatPutIntentWrites(t *testing.T) {
	db := openTest(t, t.TempDir())
	ctx := context.Background()
	exp := time.Unix(1_800_000_000, 123456789).UTC()
	var intents []*Intent
	for i, meta := range []string{"", `{"album":"holidays"}`, `{"a": 1}`, `{"<b>":"é"}`, `[1,2]`} {
		in := pending(string(rune('a'+i))+"-plain", exp)
		in.Metadata = json.RawMessage(meta)
		in.Filename = "photo \u2028 \"x\".png"
		in.Identity = "alice"
		intents = append(intents, in)
	}
	for i := 0; i < 64; i++ { // concurrent: written in batches
		intents = append(intents, pending("batch-"+string(rune('A'+i%26))+string(rune('a'+i/26)), exp.Add(time.Duration(i))))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(intents))
	for i, in := range intents {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = db.Create(ctx, in) }()
	}
	wg.Wait()

	want := map[string][]byte{}
	for i, in := range intents {
		if errs[i] != nil {
			t.Fatalf("create %s: %v", in.ID, errs[i])
		}
		val, err := marshalIntent(in)
		if err != nil {
			t.Fatal(err)
		}
		want[string(intentKey(in.ID))] = val
		for _, k := range indexKeys(in) {
			want[string(k)] = nil
		}
	}
	got := map[string][]byte{}
	err := db.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().KeyCopy(nil))
			if k[0] != 'i' && k[0] != 's' && k[0] != 'x' {
				continue // the store's own bookkeeping
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			got[k] = v
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d keys stored, want %d", len(got), len(want))
	}
	for k, v := range want {
		gv, ok := got[k]
		if !ok {
			t.Errorf("key %q missing", k)
		} else if !bytes.Equal(gv, v) {
			t.Errorf("key %q: value\n got  %s\n want %s", k, gv, v)
		}
	}
}
