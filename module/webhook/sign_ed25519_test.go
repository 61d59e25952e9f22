package webhook

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

func mustKeyPair(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	whsk, whpk, err := NewEd25519KeyPair()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(whsk, "whsk_") || !strings.HasPrefix(whpk, "whpk_") {
		t.Fatalf("key pair forms %q %q", whsk[:5], whpk[:5])
	}
	key, err := ParseSigningKey(whsk)
	if err != nil {
		t.Fatal(err)
	}
	if PublicKeyOf(key) != whpk {
		t.Fatal("public key of the parsed signing key differs from the one printed")
	}
	return key, whpk
}

func TestParseSigningKeyForms(t *testing.T) {
	key, whpk := mustKeyPair(t)
	seed := "whsk_" + base64.StdEncoding.EncodeToString(key.Seed())
	fromSeed, err := ParseSigningKey(seed)
	if err != nil || !fromSeed.Equal(key) {
		t.Fatalf("seed form: %v", err)
	}
	if pub, err := ParsePublicKey(whpk); err != nil || !pub.Equal(key.Public()) {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	other, _ := mustKeyPair(t)
	mismatched := append(append([]byte{}, key.Seed()...), other.Public().(ed25519.PublicKey)...)
	for _, bad := range []string{
		"", "whsec_" + base64.StdEncoding.EncodeToString(key), "whsk_", "whsk_!!!",
		"whsk_" + base64.StdEncoding.EncodeToString(make([]byte, 31)),
		"whsk_" + base64.StdEncoding.EncodeToString(mismatched),
	} {
		if _, err := ParseSigningKey(bad); err == nil {
			t.Errorf("ParseSigningKey(%.12q…) accepted", bad)
		}
	}
	for _, bad := range []string{"", whpk[5:], "whpk_" + base64.StdEncoding.EncodeToString(make([]byte, 33))} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%.12q…) accepted", bad)
		}
	}
}

// nodeVerifies checks a v1a signature with Node's crypto (OpenSSL), an
// implementation independent of Go's.
const nodeVerifies = `
const crypto = require("node:crypto");
const [pub, id, ts, sigs] = process.argv.slice(1);
const body = require("node:fs").readFileSync(0);
const key = crypto.createPublicKey({
  key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), Buffer.from(pub.slice(5), "base64")]),
  format: "der", type: "spki",
});
const msg = Buffer.concat([Buffer.from(id + "." + ts + "."), body]);
const ok = sigs.split(" ").some((s) => s.startsWith("v1a,") && crypto.verify(null, msg, key, Buffer.from(s.slice(4), "base64")));
process.stdout.write(ok ? "valid" : "invalid");
`

func verifyWithNode(t *testing.T, whpk, id string, ts time.Time, body []byte, header string) bool {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed as the independent verifier: %v", err)
	}
	cmd := exec.Command(node, "-e", nodeVerifies, whpk, id, strconv.FormatInt(ts.Unix(), 10), header)
	cmd.Stdin = strings.NewReader(string(body))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	return string(out) == "valid"
}

// TestEd25519SignatureIndependentlyVerified signs with an HMAC secret and
// two Ed25519 keys (a rotation), then checks every signature with
// independent verifiers: the Standard Webhooks library for v1, Node's
// crypto for v1a.
func TestEd25519SignatureIndependentlyVerified(t *testing.T) {
	oldKey, oldPub := mustKeyPair(t)
	newKey, newPub := mustKeyPair(t)
	_, strangerPub := mustKeyPair(t)
	ep := &Endpoint{Secrets: []Secret{mustSecret(t, secretA)}, Ed25519Keys: []ed25519.PrivateKey{oldKey, newKey}}
	body := []byte(`{"type":"upload.completed","data":{"id":"x","width":30000}}`)
	now := time.Now()
	header := ep.Signature("evt_1", now, body)

	fields := strings.Fields(header)
	if len(fields) != 3 || !strings.HasPrefix(fields[0], "v1,") || !strings.HasPrefix(fields[1], "v1a,") || !strings.HasPrefix(fields[2], "v1a,") {
		t.Fatalf("header %q: want one v1 and two v1a signatures", header)
	}
	h := http.Header{}
	h.Set(HeaderID, "evt_1")
	h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(HeaderSignature, header)
	if err := verifier(t, secretA).Verify(body, h); err != nil {
		t.Fatalf("v1 beside v1a refused by the reference library: %v", err)
	}
	for name, pub := range map[string]string{"old key": oldPub, "new key": newPub} {
		if !verifyWithNode(t, pub, "evt_1", now, body, header) {
			t.Errorf("%s: Node refused the v1a signature", name)
		}
	}
	if verifyWithNode(t, strangerPub, "evt_1", now, body, header) {
		t.Error("Node accepted a signature for a key that never signed")
	}
	if verifyWithNode(t, newPub, "evt_1", now, []byte(`{"type":"upload.completed","data":{"id":"y"}}`), header) {
		t.Error("Node accepted a tampered body")
	}
	if verifyWithNode(t, newPub, "evt_2", now, body, header) {
		t.Error("Node accepted a changed id")
	}
	if pub, _ := ParsePublicKey(newPub); !VerifyEd25519([]ed25519.PublicKey{pub}, header, "evt_1", now, body) {
		t.Error("VerifyEd25519 refused a valid signature")
	}

	only := (&Endpoint{Ed25519Keys: []ed25519.PrivateKey{newKey}}).Signature("evt_1", now, body)
	// One signature, v1a (counting "v1" in the header would also count
	// it inside the random base64 of the signature, 2 % of the time).
	if f := strings.Fields(only); len(f) != 1 || !strings.HasPrefix(f[0], "v1a,") {
		t.Errorf("Ed25519-only header %q", only)
	}
}

// TestSendSignsEd25519 checks a real delivery carries the v1a signature.
func TestSendSignsEd25519(t *testing.T) {
	key, whpk := mustKeyPair(t)
	var got http.Header
	var gotBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, gotBody = r.Header.Clone(), nil
		gotBody, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	ev := &store.Event{ID: "evt_send", Type: store.EventCompleted, CreatedAt: time.Now(), Intent: store.Intent{ID: "i1", Width: 640, Height: 480}}
	res := NewSender().Send(context.Background(), &Endpoint{URL: srv.URL, Timeout: 5 * time.Second, Ed25519Keys: []ed25519.PrivateKey{key}}, ev)
	if res.Outcome != Delivered {
		t.Fatalf("send: %+v", res)
	}
	ts, _ := strconv.ParseInt(got.Get(HeaderTimestamp), 10, 64)
	if !verifyWithNode(t, whpk, "evt_send", time.Unix(ts, 0), gotBody, got.Get(HeaderSignature)) {
		t.Fatalf("delivery's signature %q refused by Node", got.Get(HeaderSignature))
	}
	if !strings.Contains(string(gotBody), `"width":640,"height":480`) {
		t.Errorf("body %s lacks the image's dimensions", gotBody)
	}
}
