package receivers

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// newKeyPair returns an Ed25519 key and its "whpk_" public key, made with
// Go's standard library alone (not the plugin's webhook package).
func newKeyPair(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv, "whpk_" + base64.StdEncoding.EncodeToString(pub)
}

// signV1a is a "v1a,<base64>" Ed25519 signature of "{id}.{ts}.{body}".
func signV1a(key ed25519.PrivateKey, id string, ts time.Time, body []byte) string {
	msg := []byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "." + string(body))
	return "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg))
}

func TestReceiversEd25519(t *testing.T) {
	for _, spec := range receiverSpecs {
		t.Run(spec.name, func(t *testing.T) {
			t.Parallel()
			testReceiverEd25519(t, spec)
		})
	}
}

func testReceiverEd25519(t *testing.T, spec receiverSpec) {
	keyA, pubA := newKeyPair(t)
	keyB, pubB := newKeyPair(t)
	secret := newSecret(t)
	body := eventBody("upload.completed", "01m8h0g1saxzbz711pavtr43xf", "completed", "")

	headers := func(id string, ts time.Time, sigs ...string) map[string]string {
		return map[string]string{
			"webhook-id": id, "webhook-timestamp": strconv.FormatInt(ts.Unix(), 10),
			"webhook-signature": strings.Join(sigs, " "),
		}
	}
	type tcase struct {
		name   string
		make   func(now time.Time) delivery
		accept bool
	}
	run := func(t *testing.T, rr *runningReceiver, cases []tcase) {
		var want []string
		for _, c := range cases {
			d := c.make(time.Now())
			status, answer, _ := rr.post(t, d)
			switch {
			case c.accept && status != http.StatusOK:
				t.Errorf("%s: status %d, want 200; body %s", c.name, status, answer)
			case !c.accept && status != http.StatusUnauthorized:
				t.Errorf("%s: status %d, want 401; body %s", c.name, status, answer)
			}
			if c.accept {
				want = append(want, d.headers["webhook-id"])
			}
		}
		// Receivers print each event before they answer: all lines are in.
		var got []string
		for _, line := range rr.stdout.linesFrom(0) {
			var p printed
			if err := json.Unmarshal([]byte(line), &p); err != nil {
				t.Fatalf("stdout line %q: %v", line, err)
			}
			got = append(got, p.WebhookID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("printed %q, want %q", got, want)
		}
	}

	t.Run("public key only", func(t *testing.T) {
		rr := startReceiver(t, spec.start(t), "", "WEBHOOK_PUBLIC_KEY="+pubA)
		run(t, rr, []tcase{
			{"valid v1a", func(now time.Time) delivery {
				return delivery{body, headers("evt_a", now, signV1a(keyA, "evt_a", now, body))}
			}, true},
			{"v1 and v1a together, as during a move from HMAC", func(now time.Time) delivery {
				return delivery{body, headers("evt_mixed", now, sign(t, secret, "evt_mixed", now, body), signV1a(keyA, "evt_mixed", now, body))}
			}, true},
			{"rotation: only the second key is known", func(now time.Time) delivery {
				return delivery{body, headers("evt_rot", now, signV1a(keyB, "evt_rot", now, body), signV1a(keyA, "evt_rot", now, body))}
			}, true},
			{"signed by an unknown key", func(now time.Time) delivery {
				return delivery{body, headers("evt_b", now, signV1a(keyB, "evt_b", now, body))}
			}, false},
			{"tampered body", func(now time.Time) delivery {
				d := delivery{body, headers("evt_t", now, signV1a(keyA, "evt_t", now, body))}
				d.body = bytes.Replace(body, []byte(`"alice"`), []byte(`"mallory"`), 1)
				return d
			}, false},
			{"signature for another id", func(now time.Time) delivery {
				return delivery{body, headers("evt_x", now, signV1a(keyA, "evt_y", now, body))}
			}, false},
			{"stale timestamp", func(now time.Time) delivery {
				old := now.Add(-10 * time.Minute)
				return delivery{body, headers("evt_old", old, signV1a(keyA, "evt_old", old, body))}
			}, false},
			{"v1a label on an HMAC signature", func(now time.Time) delivery {
				hm := strings.Replace(sign(t, secret, "evt_label", now, body), "v1,", "v1a,", 1)
				return delivery{body, headers("evt_label", now, hm)}
			}, false},
			{"HMAC only, no secret configured", func(now time.Time) delivery {
				return delivery{body, headers("evt_v1", now, sign(t, secret, "evt_v1", now, body))}
			}, false},
		})
	})
	t.Run("secret and two public keys", func(t *testing.T) {
		rr := startReceiver(t, spec.start(t), secret, "WEBHOOK_PUBLIC_KEY="+pubB+" "+pubA)
		run(t, rr, []tcase{
			{"v1 alone", func(now time.Time) delivery {
				return delivery{body, headers("evt_v1", now, sign(t, secret, "evt_v1", now, body))}
			}, true},
			{"v1a by the first key", func(now time.Time) delivery {
				return delivery{body, headers("evt_b", now, signV1a(keyB, "evt_b", now, body))}
			}, true},
			{"v1a by the second key", func(now time.Time) delivery {
				return delivery{body, headers("evt_a", now, signV1a(keyA, "evt_a", now, body))}
			}, true},
			{"v1 by another secret", func(now time.Time) delivery {
				return delivery{body, headers("evt_bad", now, sign(t, newSecret(t), "evt_bad", now, body))}
			}, false},
		})
	})
}
