package store

import (
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// resChans are the answer channels of Create, reused: the committer sends
// exactly one answer on each, and Create takes it before giving the
// channel back, so a reused channel is always empty.
var resChans = sync.Pool{New: func() any { return make(chan error, 1) }}

// newIntentKey returns the record key of a new intent at the start of a
// buffer with room for its index keys and its record after it: what
// putNewIntent writes then takes one allocation instead of three.
func newIntentKey(in *Intent) (key, buf []byte) {
	n := len(intentPrefix) + len(in.ID)
	buf = make([]byte, 0, n+indexKeysSize(in)+intentSize(in))
	buf = append(append(buf, intentPrefix...), in.ID...)
	return buf[:n:n], buf
}

// putNewIntent writes a new intent (what putIntent(txn, nil, in) writes:
// the record under key, then its index entries). buf is newIntentKey's,
// the index keys and the record are appended to it; the entries go in
// ents, which holds room for them: one allocation per batch instead of
// one Entry per key. The transaction keeps pointers into ents and buf
// until it is committed; neither is reused.
func putNewIntent(txn *badger.Txn, ents []badger.Entry, key, buf []byte, in *Intent) ([]badger.Entry, error) {
	buf, keys := appendIndexKeys(buf, in)
	start := len(buf)
	buf, err := appendIntent(buf, in)
	if err != nil {
		return ents, fmt.Errorf("encoding intent: %w", err)
	}
	first := len(ents)
	ents = append(ents, badger.Entry{Key: key, Value: buf[start:len(buf):len(buf)]})
	for _, k := range keys {
		ents = append(ents, badger.Entry{Key: k})
	}
	for i := first; i < len(ents); i++ {
		if err := txn.SetEntry(&ents[i]); err != nil {
			return ents, err
		}
	}
	return ents, nil
}

// entriesPerIntent is how many keys putNewIntent writes for one intent.
const entriesPerIntent = 3
