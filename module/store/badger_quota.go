package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Quota keys: "u/" + profile and subject (each length-prefixed) holds the
// subject's Counters as JSON; "v/" + the same + a bucket's start (Unix
// seconds, big-endian) holds the bytes verified in that bucket. They are
// written in the transactions that write the intents they count.
var (
	usagePrefix    = []byte("u/")
	verifiedPrefix = []byte("v/")
)

func subjectKey(prefix []byte, profile, subject string) []byte {
	k := append([]byte{}, prefix...)
	k = binary.BigEndian.AppendUint16(k, uint16(len(profile)))
	k = append(k, profile...)
	k = binary.BigEndian.AppendUint16(k, uint16(len(subject)))
	return append(k, subject...)
}

func getCounters(txn *badger.Txn, profile, subject string) (Counters, error) {
	var c Counters
	item, err := txn.Get(subjectKey(usagePrefix, profile, subject))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, &c) })
	return c, err
}

func putCounters(txn *badger.Txn, profile, subject string, c Counters) error {
	k := subjectKey(usagePrefix, profile, subject)
	if c.Pending == 0 && c.Reserved == 0 {
		return txn.Delete(k)
	}
	v, _ := json.Marshal(c)
	return txn.Set(k, v)
}

// sumVerified adds up the subject's verified buckets starting at or after
// since, deleting older ones when prune (in a read-write transaction). It
// returns the sum and the start of the oldest bucket counted.
func sumVerified(txn *badger.Txn, profile, subject string, since time.Time, prune bool) (int64, time.Time, error) {
	p := subjectKey(verifiedPrefix, profile, subject)
	opts := badger.DefaultIteratorOptions
	opts.Prefix = p
	it := txn.NewIterator(opts)
	var sum int64
	var oldest time.Time
	var stale [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != len(p)+8 {
			continue
		}
		start := time.Unix(int64(binary.BigEndian.Uint64(k[len(p):])), 0)
		if start.Before(since) {
			if prune {
				stale = append(stale, it.Item().KeyCopy(nil))
			}
			continue
		}
		var n int64
		if err := it.Item().Value(func(v []byte) error {
			if len(v) == 8 {
				n = int64(binary.BigEndian.Uint64(v))
			}
			return nil
		}); err != nil {
			it.Close()
			return 0, oldest, err
		}
		if oldest.IsZero() && n > 0 {
			oldest = start
		}
		sum += n
	}
	it.Close()
	for _, k := range stale {
		if err := txn.Delete(k); err != nil {
			return 0, oldest, err
		}
	}
	return sum, oldest, nil
}

// reserveQuota checks a new intent against its caps and counts it, in the
// transaction that stores it. A refusal is a *QuotaError.
func reserveQuota(txn *badger.Txn, in *Intent, now time.Time) error {
	q := in.Quota
	c, err := getCounters(txn, in.Profile, q.Subject)
	if err != nil {
		return err
	}
	var verified int64
	var oldest time.Time
	if q.Limits.MaxVerified > 0 {
		verified, oldest, err = sumVerified(txn, in.Profile, q.Subject, now.Add(-q.Limits.VerifiedWindow), true)
		if err != nil {
			return err
		}
	}
	if err := CheckQuota(q, c, verified, oldest, now); err != nil {
		return err
	}
	c.Pending++
	c.Reserved += q.Reserved
	return putCounters(txn, in.Profile, q.Subject, c)
}

// releaseQuota applies the change of Counters of a transition from
// pending, in the transaction that writes it.
func releaseQuota(txn *badger.Txn, old, in *Intent) error {
	d, verified, ok := quotaDelta(old, in)
	if !ok {
		return nil
	}
	c, err := getCounters(txn, in.Profile, in.Quota.Subject)
	if err != nil {
		return err
	}
	c.Pending = max(0, c.Pending+d.Pending)
	c.Reserved = max(0, c.Reserved+d.Reserved)
	if err := putCounters(txn, in.Profile, in.Quota.Subject, c); err != nil {
		return err
	}
	if verified <= 0 {
		return nil
	}
	k := subjectKey(verifiedPrefix, in.Profile, in.Quota.Subject)
	k = binary.BigEndian.AppendUint64(k, uint64(bucketStart(verifiedAt(in), in.Quota.BucketSeconds)))
	var n int64
	item, err := txn.Get(k)
	switch {
	case err == nil:
		if err := item.Value(func(v []byte) error {
			if len(v) == 8 {
				n = int64(binary.BigEndian.Uint64(v))
			}
			return nil
		}); err != nil {
			return err
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return err
	}
	return txn.Set(k, binary.BigEndian.AppendUint64(nil, uint64(n+verified)))
}

// Usage implements QuotaStore.
func (b *Badger) Usage(_ context.Context, profile, subject string, since time.Time) (Usage, error) {
	u := Usage{Profile: profile, Subject: subject, Since: since}
	err := b.db.View(func(txn *badger.Txn) error {
		c, err := getCounters(txn, profile, subject)
		if err != nil {
			return err
		}
		u.Pending, u.Reserved = c.Pending, c.Reserved
		u.Verified, _, err = sumVerified(txn, profile, subject, since, false)
		return err
	})
	return u, mapErr(err)
}

// TakeToken implements QuotaStore: in memory, per process. A Badger
// directory is opened by one process, so this is every instance there is.
func (b *Badger) TakeToken(_ context.Context, key string, n int, per time.Duration, now time.Time) (bool, time.Duration, error) {
	ok, wait := b.rates.Take(key, n, per, now)
	return ok, wait, nil
}

var _ QuotaStore = (*Badger)(nil)
