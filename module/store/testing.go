package store

import "github.com/dgraph-io/badger/v4"

// WriteRawIntent overwrites the stored value of intent id with val, as is,
// leaving its index entries alone. It exists for tests that need a damaged
// record (a value that does not decode); the product never calls it.
func WriteRawIntent(b *Badger, id string, val []byte) error {
	return mapErr(b.update(func(txn *badger.Txn) error { return txn.Set(intentKey(id), val) }))
}

// WriteRawEvent overwrites the stored value of outbox event id with val, as
// WriteRawIntent does for an intent, and removes its delivery record kept
// apart, so that val is the whole event (as an earlier version stored
// events, with their delivery record inside): for tests only.
func WriteRawEvent(b *Badger, id string, val []byte) error {
	return mapErr(b.update(func(txn *badger.Txn) error {
		if err := txn.Delete(deliveryKey(id)); err != nil {
			return err
		}
		return txn.Set(outboxKey(id), val)
	}))
}
