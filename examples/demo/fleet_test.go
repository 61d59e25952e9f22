package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// TestFleetDemo starts the fleet demo on free ports, logs in, grants,
// uploads and completes one image through the load balancer, checks that
// both sidecars answered and that an intent granted through one is read
// through the other, then stops it and checks nothing is left: every port
// free again, PostgreSQL's cluster removed.
func TestFleetDemo(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, bin := range []string{testkit.Bin("CADDY_BIN", "caddy"), testkit.Bin("BACKEND_BIN", "backend"), testkit.Bin("VERSITYGW_BIN", "versitygw")} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing: run `make build tools` (make test does)", bin)
		}
	}
	var p fleetPorts
	for _, dst := range []*int{&p.Site, &p.SidecarA, &p.SidecarB, &p.Backend, &p.S3} {
		n, err := testkit.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		*dst = n
	}
	// The admin ports are three in a row, as the demo takes them.
	p.Admin = freeRun(t, 3)
	p.AdminA, p.AdminB = p.Admin+1, p.Admin+2

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readyc := make(chan fleetInfo, 1)
	done := make(chan error, 1)
	go func() { done <- runFleet(ctx, p, t.TempDir(), func(in fleetInfo) { readyc <- in }) }()
	var info fleetInfo
	select {
	case info = <-readyc:
	case err := <-done:
		t.Fatalf("the fleet demo did not start: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the fleet demo did not start within 2 minutes")
	}

	served := map[string]int{}
	do := func(method, path, body string, headers ...string) (int, map[string]any, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, info.URL+path, rd)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		by := resp.Header.Get("X-Served-By")
		served[by]++
		return resp.StatusCode, m, by
	}
	status, login, _ := do("POST", "/login", `{"user":"alice"}`, "Accept", "application/json")
	token, _ := login["token"].(string)
	if status != 200 || token == "" {
		t.Fatalf("login through the load balancer: %d %v", status, login)
	}
	auth := []string{"Authorization", "Bearer " + token}
	img := onePNG(t)
	status, g, grantedBy := do("POST", "/uploads", fmt.Sprintf(`{"content_type":"image/png","filename":"cat.png","size":%d}`, len(img)), auth...)
	if status != 201 {
		t.Fatalf("grant through the load balancer: %d %v", status, g)
	}
	id, _ := g["id"].(string)
	fields := map[string]string{}
	for k, v := range g["fields"].(map[string]any) {
		fields[k], _ = v.(string)
	}
	url, _ := g["url"].(string)
	if st, body, err := testkit.PostForm(url, fields, "image/png", img); err != nil || st != 201 {
		t.Fatalf("upload to S3: %d %s %v", st, body, err)
	}
	status, c, _ := do("POST", "/uploads/"+id+"/complete", "", auth...)
	if status != 200 || c["status"] != "completed" {
		t.Fatalf("complete through the load balancer: %d %v", status, c)
	}
	// Read it until the other sidecar has answered (round robin: the next
	// request or the one after).
	readBy := ""
	for i := 0; i < 4 && (readBy == "" || readBy == grantedBy); i++ {
		status, st, by := do("GET", "/uploads/"+id, "", auth...)
		if status != 200 || st["status"] != "completed" {
			t.Fatalf("status through %s: %d %v", by, status, st)
		}
		readBy = by
	}
	if served["sidecar-a"] == 0 || served["sidecar-b"] == 0 || readBy == grantedBy {
		t.Fatalf("requests served: %v (granted by %q, read by %q); want both sidecars", served, grantedBy, readBy)
	}
	t.Logf("requests served through the load balancer: %v; granted by %s, read back by %s", served, grantedBy, readBy)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the fleet demo ended with: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the fleet demo did not stop within a minute")
	}
	for _, port := range []int{p.Site, p.SidecarA, p.SidecarB, p.Backend, p.S3, p.Admin, p.AdminA, p.AdminB} {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Errorf("port %d still taken after the demo stopped: %v", port, err)
			continue
		}
		l.Close()
	}
	if _, err := os.Stat(info.PostgresDir); !os.IsNotExist(err) {
		t.Errorf("PostgreSQL's cluster %s is left behind (%v)", info.PostgresDir, err)
	}
}

// TestFleetDemoRefusesTakenPort: a port in use stops the demo before it
// starts anything, naming the variable that moves it.
func TestFleetDemoRefusesTakenPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	p := fleetPorts{Site: taken}
	for _, dst := range []*int{&p.SidecarA, &p.SidecarB, &p.Backend, &p.S3, &p.Admin, &p.AdminA, &p.AdminB} {
		*dst, _ = testkit.FreePort()
	}
	err = runFleet(context.Background(), p, t.TempDir(), func(fleetInfo) { t.Error("started") })
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d (for the load balancer) is already in use", taken)) || !strings.Contains(err.Error(), "DEMO_PORT") {
		t.Fatalf("got %v", err)
	}
}

// freeRun finds n consecutive free ports.
func freeRun(t *testing.T, n int) int {
	t.Helper()
	for attempt := 0; attempt < 50; attempt++ {
		first, err := testkit.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ok := true
		for i := 1; i < n && ok; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", first+i))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok && first+n-1 <= 65535 {
			return first
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

func onePNG(t *testing.T) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
