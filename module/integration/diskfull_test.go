package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// newHooksOn is newHooks with the store in storeDir.
func newHooksOn(t *testing.T, receiverURL, storeDir string) *hooks {
	t.Helper()
	dir := t.TempDir()
	site, _ := testkit.FreePort()
	admin, _ := testkit.FreePort()
	h := &hooks{url: fmt.Sprintf("http://127.0.0.1:%d/up", site), cf: filepath.Join(dir, "Caddyfile"), admin: fmt.Sprintf("127.0.0.1:%d", admin)}
	if err := os.WriteFile(h.cf, []byte(hooksCaddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	h.env = []string{
		fmt.Sprintf("SITE_PORT=%d", site), fmt.Sprintf("ADMIN_PORT=%d", admin),
		"STORE_DIR=" + storeDir, "S3_ENDPOINT=" + s3srv.URL,
		"S3_ACCESS=" + s3srv.AccessKey, "S3_SECRET=" + s3srv.SecretKey,
		"HOOK_URL=" + receiverURL, "HOOK_SECRET=" + webhookSecret,
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
	}
	h.start(t)
	t.Cleanup(func() {
		if h.Caddy != nil && !h.Exited() {
			h.Stop(15 * time.Second)
		}
	})
	return h
}

// TestDiskFull puts the store on a small tmpfs that the test fills.
// Badger writes through sparse memory-mapped files, and a page written on
// a full filesystem kills the process with SIGBUS; the store refuses
// writes while less than store.MinFree (64 MiB) is free. So while full,
// grants and completes answer 503 store_unavailable, the process lives,
// nothing is half-written; when space returns everything works again and
// what was acknowledged before is readable.
func TestDiskFull(t *testing.T) {
	rc := newHookReceiver(t)
	mnt := filepath.Join(t.TempDir(), "fs")
	umount, err := testkit.MountTmpfs(mnt, 160<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := umount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	h := newHooksOn(t, rc.srv.URL, filepath.Join(mnt, "intents"))
	grantBody := func(i int) map[string]any {
		b := map[string]any{"content_type": "image/png", "filename": "x.png"}
		if i%2 == 1 { // large enough for Badger's value log
			b["metadata"] = map[string]string{"pad": fmt.Sprintf("%0900d", i)}
		}
		return b
	}
	var acked []string
	for i := 0; i < 10; i++ {
		g := call(t, "POST", h.url, grantBody(i), carol...)
		if g.Status != 201 {
			t.Fatalf("grant before full: %d %s", g.Status, g.Raw)
		}
		acked = append(acked, g.str("id"))
	}
	uploaded := h.uploaded(t, false) // completed once space returns

	filler := filepath.Join(mnt, "filler")
	n, err := testkit.FillDisk(filler)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for i := 0; i < 40; i++ {
		r := call(t, "POST", h.url, grantBody(i), carol...)
		expect(t, r, 503, "store_unavailable")
		refused++
	}
	r := call(t, "POST", h.url+"/"+uploaded+"/complete", nil, carol...)
	expect(t, r, 503, "store_unavailable")
	if h.Exited() {
		t.Fatalf("Caddy died on a full disk:\n%s", tail(h.Output(), 30))
	}
	// Nothing half-written: the store holds exactly the acknowledged
	// intents, all still pending.
	l := adminCall(t, h, "GET", "/direct_upload/intents?status=pending&limit=1000")
	if ins, _ := l.Body["intents"].([]any); l.Status != 200 || len(ins) != len(acked)+1 {
		t.Fatalf("intents while full: %d, want %d: %.500s", len(ins), len(acked)+1, l.Raw)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		g := call(t, "POST", h.url, grantBody(i), carol...)
		if g.Status != 201 {
			t.Fatalf("grant after space returned: %d %s", g.Status, g.Raw)
		}
		acked = append(acked, g.str("id"))
	}
	if r := call(t, "POST", h.url+"/"+uploaded+"/complete", nil, carol...); r.Status != 200 || r.str("status") != "completed" {
		t.Fatalf("complete after space returned: %d %s", r.Status, r.Raw)
	}
	for _, id := range acked {
		if r := call(t, "GET", h.url+"/"+id, nil, carol...); r.Status != 200 || r.str("status") != "pending" {
			t.Fatalf("acknowledged %s after the disk was full: %d %s", id, r.Status, r.Raw)
		}
	}
	waitFor(t, "the completion's event", 10*time.Second, func() bool { return len(rc.byIntent()[uploaded]) == 1 })
	summary := fmt.Sprintf("disk full: a 160 MiB tmpfs under the store filled with %d bytes; %d grants and 1 complete refused with 503 store_unavailable, process alive, nothing half-written; after freeing space %d acknowledged intents readable, grants and complete work", n, refused, len(acked))
	t.Log(summary)
	fmt.Println(summary)
	reportFaultMatrix(t, "disk-full", summary)
}
