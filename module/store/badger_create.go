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

// putNewIntent writes a new intent (what putIntent(txn, nil, in) writes:
// the record under key, then its index entries) with the entries in ents,
// which holds room for them: one allocation per batch instead of one
// Entry per key. The transaction keeps pointers into ents until it is
// committed; ents is never reused.
func putNewIntent(txn *badger.Txn, ents []badger.Entry, key []byte, in *Intent) ([]badger.Entry, error) {
	val, err := marshalIntent(in)
	if err != nil {
		return ents, fmt.Errorf("encoding intent: %w", err)
	}
	first := len(ents)
	ents = append(ents, badger.Entry{Key: key, Value: val})
	for _, k := range indexKeys(in) {
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
