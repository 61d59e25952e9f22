package store

import "github.com/dgraph-io/badger/v4"

// WriteRawIntent overwrites the stored value of intent id with val, as is,
// leaving its index entries alone. It exists for tests that need a damaged
// record (a value that does not decode); the product never calls it.
func WriteRawIntent(b *Badger, id string, val []byte) error {
	return mapErr(b.update(func(txn *badger.Txn) error { return txn.Set(intentKey(id), val) }))
}

// WriteRawEvent overwrites the stored value of outbox event id with val, as
// WriteRawIntent does for an intent: for tests only.
func WriteRawEvent(b *Badger, id string, val []byte) error {
	return mapErr(b.update(func(txn *badger.Txn) error { return txn.Set(outboxKey(id), val) }))
}
