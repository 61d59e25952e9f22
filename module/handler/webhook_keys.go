package handler

import (
	"strings"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/webhook"
)

// addSigningKey adds one configured key to the endpoint: an Ed25519
// signing key ("whsk_", v1a signatures) or an HMAC secret ("whsec_", v1).
func addSigningKey(ep *webhook.Endpoint, s string) error {
	if strings.HasPrefix(s, webhook.SigningKeyPrefix) {
		key, err := webhook.ParseSigningKey(s)
		if err != nil {
			return err
		}
		ep.Ed25519Keys = append(ep.Ed25519Keys, key)
		return nil
	}
	sec, err := webhook.ParseSecret(s)
	if err != nil {
		return err
	}
	ep.Secrets = append(ep.Secrets, sec)
	return nil
}
