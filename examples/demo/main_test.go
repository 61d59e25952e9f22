package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func envOf(m map[string]string) func(k, def string) string {
	return func(k, def string) string {
		if v, ok := m[k]; ok {
			return v
		}
		return def
	}
}

func TestReadPorts(t *testing.T) {
	p, err := readPorts(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := (ports{site: "8080", backend: "127.0.0.1:9000", s3: "127.0.0.1:7070", admin: "localhost:2019"}); p != want {
		t.Errorf("defaults: %+v, want %+v", p, want)
	}
	for _, site := range []string{":8081", "127.0.0.1:8081", "http://127.0.0.1:8081"} {
		p, err := readPorts(envOf(map[string]string{"SITE_ADDRESS": site}))
		if err != nil || p.site != "8081" {
			t.Errorf("SITE_ADDRESS=%s: %+v %v", site, p, err)
		}
	}
	p, err = readPorts(envOf(map[string]string{"BACKEND_URL": "http://127.0.0.1:9001", "S3_ENDPOINT": "http://127.0.0.1:7071", "ADMIN_ADDRESS": "127.0.0.1:2020"}))
	if err != nil || p.backend != "127.0.0.1:9001" || p.s3 != "127.0.0.1:7071" || p.admin != "127.0.0.1:2020" {
		t.Errorf("moved ports: %+v %v", p, err)
	}
	for k, v := range map[string]string{"SITE_ADDRESS": "8080", "BACKEND_URL": "127.0.0.1:9000", "S3_ENDPOINT": "https://s3.example.com", "ADMIN_ADDRESS": "2019"} {
		if _, err := readPorts(envOf(map[string]string{k: v})); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: error %v, want one naming %s", k, v, err, k)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestDemoRefusesTakenPort runs the demo binary with each of its ports
// taken: it must exit non-zero at once, naming the port and the variable
// that moves it, having started nothing (its other ports stay free).
func TestDemoRefusesTakenPort(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "demo")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, c := range []struct{ variable, what string }{
		{"SITE_ADDRESS", "the site"}, {"BACKEND_URL", "the example backend"},
		{"S3_ENDPOINT", "S3 (versitygw)"}, {"ADMIN_ADDRESS", "Caddy's admin API"},
	} {
		t.Run(c.variable, func(t *testing.T) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			taken := busy.Addr().(*net.TCPAddr).Port
			free := map[string]int{"SITE_ADDRESS": freePort(t), "BACKEND_URL": freePort(t), "S3_ENDPOINT": freePort(t), "ADMIN_ADDRESS": freePort(t)}
			free[c.variable] = taken
			env := []string{
				fmt.Sprintf("SITE_ADDRESS=:%d", free["SITE_ADDRESS"]),
				fmt.Sprintf("BACKEND_URL=http://127.0.0.1:%d", free["BACKEND_URL"]),
				fmt.Sprintf("S3_ENDPOINT=http://127.0.0.1:%d", free["S3_ENDPOINT"]),
				fmt.Sprintf("ADMIN_ADDRESS=127.0.0.1:%d", free["ADMIN_ADDRESS"]),
				// Binaries that do not exist: were the check to let the demo
				// go on, it could start nothing.
				"CADDY_BIN=/nonexistent/caddy", "BACKEND_BIN=/nonexistent/backend", "VERSITYGW_BIN=/nonexistent/versitygw",
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = append(cmd.Environ(), env...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("the demo did not exit with %s taken:\n%s", c.variable, out)
			}
			if err == nil {
				t.Fatalf("the demo exited 0 with %s taken:\n%s", c.variable, out)
			}
			msg := string(out)
			if !strings.Contains(msg, fmt.Sprintf(":%d is already in use (port for %s)", taken, c.what)) || !strings.Contains(msg, "move it with "+c.variable) {
				t.Errorf("message does not name the port and %s:\n%s", c.variable, msg)
			}
			for name, port := range free {
				if name == c.variable {
					continue
				}
				l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					t.Errorf("port of %s (%d) is in use after the demo exited: %v", name, port, err)
					continue
				}
				l.Close()
			}
		})
	}
}
