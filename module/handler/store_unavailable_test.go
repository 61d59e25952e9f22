package handler

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// TestGrantWithDatabaseDownIs503: a Caddy whose intents live in a
// PostgreSQL that goes down answers grants 503 store_unavailable with
// Retry-After (never a grant whose intent is not committed), and grants
// again once the database is back, without a restart or reload.
func TestGrantWithDatabaseDownIs503(t *testing.T) {
	pg, err := testkit.StartPostgres()
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{
		"direct_upload":{"sweep_interval":"1h","store":{"backend":"postgres","dsn":%q,"statement_timeout":"2s"}},
		"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"automatic_https":{"disable":true},"routes":[{"handle":[{
			"handler":"direct_upload","profile":"p","base_path":"/uploads","bucket":"b","region":"us-east-1",
			"endpoint":"http://127.0.0.1:1","path_style":true,"access_key_id":"AK","secret_access_key":"SK",
			"key":"{id}{ext}","allowed_types":["image/png"],"max_size":1024,"expires":"1m"}]}]}}}}}`, pg.DSN("handler_test"), port)
	if err := caddy.Load([]byte(cfg), true); err != nil {
		t.Fatal(err)
	}
	defer caddy.Stop()
	grant := func() (int, string, string) {
		t.Helper()
		c := &http.Client{Timeout: time.Minute}
		resp, err := c.Post(fmt.Sprintf("http://127.0.0.1:%d/uploads", port), "application/json",
			strings.NewReader(`{"filename":"a.png","content_type":"image/png","size":10}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
	}
	if code, _, body := grant(); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("grant with the database up: %d %s", code, body)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	code, retry, body := grant()
	var e struct {
		Error struct{ Code string } `json:"error"`
		ID    string                `json:"id"`
	}
	json.Unmarshal([]byte(body), &e)
	if code != http.StatusServiceUnavailable || e.Error.Code != "store_unavailable" || retry == "" || strings.Contains(body, "fields") {
		t.Fatalf("grant with the database down: %d, Retry-After %q, %s", code, retry, body)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	if code, _, body := grant(); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("grant once the database is back: %d %s", code, body)
	}
}
