package upload

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/metrics"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// Rate is a grant rate limit: N grants per Per, per subject, as a token
// bucket (a burst of N, then one every Per/N).
type Rate struct {
	N   int
	Per time.Duration
}

// Limits are a profile's per-subject quotas and rate limit. The subject is
// the identity, or "ip:" and the client's address on routes without one.
type Limits struct {
	store.QuotaLimits
	Rate Rate
}

type clientIPKey struct{}

// WithClientIP returns ctx carrying the client's address: the subject of
// quotas and rate limits on routes without identity.
func WithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, clientIPKey{}, ip)
}

// Subject is whom quotas and rate limits count for a request.
func Subject(ctx context.Context, identity string) string {
	if identity != "" {
		return identity
	}
	if ip, _ := ctx.Value(clientIPKey{}).(string); ip != "" {
		return "ip:" + ip
	}
	return "ip:unknown"
}

// admit applies the profile's rate limit and quota charge to a drafted
// intent: it takes a token (or refuses rate_limited), and charges the
// intent its reservation (the declared size, or the profile's maximum),
// which the store checks against the caps when it stores the intent.
func (s *Service) admit(ctx context.Context, p *Profile, in *store.Intent) error {
	if p.Limits.Rate.N <= 0 && !p.Limits.Any() {
		return nil
	}
	subject := Subject(ctx, in.Identity)
	if r := p.Limits.Rate; r.N > 0 {
		qs, ok := s.Store.(store.QuotaStore)
		if !ok {
			return fmt.Errorf("the store %T keeps no rate limits", s.Store)
		}
		ok, wait, err := qs.TakeToken(ctx, p.Name+"/"+subject, r.N, r.Per, s.Now())
		if err != nil {
			s.Logger.Error("rate limit unavailable", zap.String("profile", p.Name), zap.Error(err))
			return ErrUnavailable
		}
		if !ok {
			metrics.GrantsRefused.WithLabelValues(p.Name, "rate").Inc()
			e := errorf(ErrRateLimited, "at most %d grants per %s; try again in %d s", r.N, r.Per, store.RetrySeconds(wait))
			e.RetryAfter = wait
			return e
		}
	}
	if p.Limits.Any() {
		in.Quota = &store.Quota{
			Subject: subject, Reserved: in.MaxSize,
			BucketSeconds: int64(p.Limits.BucketWidth() / time.Second), Limits: p.Limits.QuotaLimits,
		}
	}
	return nil
}

// quotaErr turns the store's refusal into the client's error, counting it.
func quotaErr(profile string, err error) (*Error, bool) {
	var qe *store.QuotaError
	if !errors.As(err, &qe) {
		return nil, false
	}
	metrics.GrantsRefused.WithLabelValues(profile, qe.Cap).Inc()
	var msg string
	switch qe.Cap {
	case "max_pending":
		msg = fmt.Sprintf("max_pending: at most %d uploads may be pending at once; complete or fail one first", qe.Limit)
	case "max_reserved":
		msg = fmt.Sprintf("max_reserved: pending uploads may reserve at most %d bytes (%d in use); complete or fail one first", qe.Limit, qe.Usage)
	default:
		msg = fmt.Sprintf("%s: at most %d bytes may be uploaded per window (%d used or reserved)", qe.Cap, qe.Limit, qe.Usage)
	}
	e := errorf(ErrQuotaExceeded, "%s", msg)
	e.RetryAfter = qe.RetryAfter
	return e, true
}

// FormatRate writes a rate as the configuration does: "20/1m0s".
func FormatRate(r Rate) string { return fmt.Sprintf("%d/%s", r.N, r.Per) }
