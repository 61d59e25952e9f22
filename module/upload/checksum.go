package upload

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// Checksums. A client may declare the SHA-256 of its file
// (checksum_sha256, base64 as S3 writes it); a profile may require one.
// The grant binds it, so the store itself refuses other bytes: a POST
// policy pins the form field x-amz-checksum-sha256, a PUT URL signs the
// header. complete then compares the store's full-object SHA-256 (a HEAD
// with checksum mode) with the declared one; a mismatch, or a store that
// kept none, is rejected (checksum_mismatch) and the object deleted.
//
// Under promotion the comparison is made on the final object: the copy is
// made with x-amz-checksum-algorithm SHA256, so the store computes the
// full-object SHA-256 of exactly the copied bytes; this covers multipart
// uploads too, whose own checksum would only be a checksum of checksums.

// checkChecksum validates a declared checksum and the profile's demand
// for one.
func checkChecksum(p *Profile, sum string) error {
	if sum == "" {
		if p.RequireChecksum {
			return ErrChecksumRequired
		}
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(sum)
	if err != nil || len(raw) != 32 || base64.StdEncoding.EncodeToString(raw) != sum {
		return errorf(ErrInvalidRequest, "checksum_sha256 must be the base64 of the file's SHA-256 (44 characters)")
	}
	return nil
}

// checksumVerdict compares the store's checksum of obj with the declared
// one: an empty reason when they match (or none was declared).
func checksumVerdict(in *store.Intent, obj bucket.Object) (Reason, string) {
	switch {
	case in.ChecksumSHA256 == "":
		return "", ""
	case obj.ChecksumSHA256 == "" || obj.ChecksumType == "COMPOSITE":
		return ReasonChecksumMismatch, "the store kept no full-object SHA-256 of the object to compare with the declared checksum"
	case obj.ChecksumSHA256 != in.ChecksumSHA256:
		return ReasonChecksumMismatch, fmt.Sprintf("the object's SHA-256 is %s, not the declared %s", obj.ChecksumSHA256, in.ChecksumSHA256)
	}
	return "", ""
}

// storedChecksum reads the store's checksum of the object at key, which
// must still be the version with etag (bucket.ErrChanged otherwise).
func storedChecksum(ctx context.Context, objs Objects, profile, key, etag string) (bucket.Object, error) {
	obj, err := objs.Stat(ctx, key)
	if err != nil {
		metrics.S3Errors.WithLabelValues(profile, "head").Inc()
		return obj, err
	}
	if etag != "" && obj.ETag != etag {
		return obj, bucket.ErrChanged
	}
	return obj, nil
}
