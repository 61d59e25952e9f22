package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store/postgres"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// pg is the package's throw-away PostgreSQL cluster.
var pg *testkit.Postgres

func TestMain(m *testing.M) { os.Exit(testkit.MainWithPostgres(m, &pg)) }

// adaptApp adapts a Caddyfile and returns the direct_upload app's JSON.
func adaptApp(t *testing.T, global string) (map[string]any, error) {
	t.Helper()
	cf := "{\n\tadmin off\n\tdirect_upload {\n" + global + "\n\t}\n}\n:0 {\n\trespond ok\n}\n"
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Apps map[string]map[string]any `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Apps[ID], nil
}

func TestCaddyfileStoreForms(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"storage /var/lib/uploads", `{"storage":"/var/lib/uploads"}`},
		{"store badger /var/lib/uploads", `{"store":{"backend":"badger","path":"/var/lib/uploads"}}`},
		{"store badger {\n path /var/lib/uploads\n }", `{"store":{"backend":"badger","path":"/var/lib/uploads"}}`},
		{"store postgres {\n dsn {env.DATABASE_URL}\n max_conns 20\n schema uploads\n table_prefix du_\n statement_timeout 3s\n }\n sweep_interval 30s",
			`{"store":{"backend":"postgres","dsn":"{env.DATABASE_URL}","max_conns":20,"schema":"uploads","statement_timeout":3000000000,"table_prefix":"du_"},"sweep_interval":30000000000}`},
	} {
		got, err := adaptApp(t, tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		b, _ := json.Marshal(got)
		if string(b) != tc.want {
			t.Errorf("%q:\n got  %s\n want %s", tc.in, b, tc.want)
		}
	}
	for _, bad := range []string{
		"store",
		"store mysql { dsn x }",
		"store postgres extra { dsn x }",
		"store postgres {\n bogus 1\n }",
		"store postgres {\n max_conns none\n }",
		"store postgres {\n statement_timeout -1s\n }",
		"store badger /a /b",
	} {
		if _, err := adaptApp(t, bad); err == nil {
			t.Errorf("%q adapted", bad)
		}
	}
}

// TestValidateTouchesNoDatabase: provisioning (caddy validate) a config
// whose PostgreSQL cannot be reached succeeds; the store opens in Start.
func TestValidateTouchesNoDatabase(t *testing.T) {
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"direct_upload":{"store":{"backend":"postgres","dsn":"postgres://u@127.0.0.1:%d/db"}}}}`, port)
	var c caddy.Config
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&c); err != nil {
		t.Fatalf("validate: %v", err)
	}
	both := `{"admin":{"disabled":true},"apps":{"direct_upload":{"storage":"/tmp/x","store":{"backend":"badger","path":"/tmp/y"}}}}`
	if err := json.Unmarshal([]byte(both), &c); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&c); err == nil || !strings.Contains(err.Error(), "storage") {
		t.Fatalf("storage beside a store module: %v, want a refusal", err)
	}
}

// TestPostgresStoreSharedAcrossReloads: the app opens the PostgreSQL
// store in Start, with the DSN from the environment, and a reload of the
// same config keeps the same open store (the same core).
func TestPostgresStoreSharedAcrossReloads(t *testing.T) {
	t.Setenv("DU_TEST_DATABASE_URL", pg.DSN("app_test"))
	cfg := []byte(`{"admin":{"disabled":true},"apps":{"direct_upload":{"sweep_interval":"1h",
		"store":{"backend":"postgres","dsn":"{env.DU_TEST_DATABASE_URL}","schema":"app_reload","max_conns":4}}}}`)
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	defer caddy.Stop()
	a := running.Load()
	db, err := a.Store()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := db.(*postgres.Store); !ok {
		t.Fatalf("store is %T, want *postgres.Store", db)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now().UTC()
	in := &store.Intent{ID: "reload1", Profile: "p", Bucket: "b", Key: "k", ContentType: "image/png", MaxSize: 1,
		Status: store.StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour), UpdatedAt: now}
	if err := db.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	first := a.core
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	b := running.Load()
	if b == a || b.core != first {
		t.Fatalf("after a reload: new app %v, same core %v; want a new app on the same core", b != a, b.core == first)
	}
	db2, _ := b.Store()
	if got, err := db2.Get(ctx, "reload1"); err != nil || got.ID != "reload1" {
		t.Fatalf("after reload: %v %v", got, err)
	}
}

// TestStartFailsClearlyWithUnusableDSN: a config whose DSN cannot be used
// fails to start, naming the store, and its error shows no password.
func TestStartFailsClearlyWithUnusableDSN(t *testing.T) {
	cfg := `{"admin":{"disabled":true},"apps":{"direct_upload":{"store":{"backend":"postgres","dsn":"postgres://u:hunter2@[::1/db","statement_timeout":"2s"}}}}`
	err := caddy.Load([]byte(cfg), true)
	if err == nil {
		caddy.Stop()
		t.Fatal("started with a DSN that cannot be parsed")
	}
	if !strings.Contains(err.Error(), "intent store") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error: %v", err)
	}
}

// TestStartWithDatabaseDownServesOnceItReturns: with PostgreSQL down at
// start, the config starts anyway; the store answers ErrUnavailable (which
// grants answer as 503 store_unavailable) and no password is logged; once
// PostgreSQL is up, the same running config reaches it by itself, without
// a reload, and stores intents.
func TestStartWithDatabaseDownServesOnceItReturns(t *testing.T) {
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			pg.Start()
		}
	}()
	dsn := strings.Replace(pg.DSN("app_lazy"), "postgres@", "postgres:hunter2@", 1)
	t.Setenv("DU_TEST_DATABASE_URL", dsn)
	cfg := []byte(`{"admin":{"disabled":true},"logging":{"logs":{"default":{"writer":{"output":"stderr"}}}},"apps":{"direct_upload":{"sweep_interval":"1h",
		"store":{"backend":"postgres","dsn":"{env.DU_TEST_DATABASE_URL}","schema":"app_lazy","statement_timeout":"2s"}}}}`)
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("start with the database down: %v", err)
	}
	defer caddy.Stop()
	a := running.Load()
	db, err := a.Store()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	now := time.Now().UTC()
	intent := func(id string) *store.Intent {
		return &store.Intent{ID: id, Profile: "p", Bucket: "b", Key: "k/" + id, ContentType: "image/png", MaxSize: 1,
			Status: store.StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour), UpdatedAt: now}
	}
	err = db.Create(ctx, intent("during"))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Create with the database down: %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("the error shows the password: %v", err)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	deadline := time.Now().Add(time.Minute)
	for {
		err := db.Create(ctx, intent("after"))
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Create after the database returned: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if running.Load() != a {
		t.Fatal("the config was replaced")
	}
	if got, err := db.Get(ctx, "after"); err != nil || got.Status != store.StatusPending {
		t.Fatalf("the intent stored after the database returned: %v %v", got, err)
	}
}
