package upload

import (
	"errors"

	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/doctor"
)

// logStorageErr logs a failed S3 call with its S3 error code and what the
// operator should fix, and returns the client's storage_error (a stable
// code) with a hint safe to show: nothing of the bucket's settings.
// A timed-out call is logged too and answered storage_timeout.
func logStorageErr(log func(string, ...zap.Field), msg string, err error, fields ...zap.Field) error {
	if errors.Is(err, errTimedOut) {
		log(msg, append(fields, zap.Error(err))...)
		return ErrStorageTimeout
	}
	h := doctor.ExplainStorage(err)
	log(msg, append(fields, zap.String("s3_code", h.Code), zap.Int("s3_status", h.Status), zap.String("fix", h.Fix), zap.Error(err))...)
	return errorf(ErrStorage, "%s", h.Client)
}
