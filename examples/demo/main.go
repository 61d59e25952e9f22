// Command demo runs the whole product on this machine: versitygw (an
// S3-compatible server) with a bucket and CORS for the demo origin, the
// example legacy backend, and Caddy with Caddyfile.example. It prints the
// URL to open and stops everything it started on Ctrl-C.
//
// `make demo` builds the binaries and runs it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// ports is what the demo listens on, read from the variables README
// documents (the ones Caddyfile.example reads).
type ports struct {
	site    string // port of SITE_ADDRESS
	backend string // host:port of BACKEND_URL
	s3      string // host:port of S3_ENDPOINT
	admin   string // ADMIN_ADDRESS, host:port
}

// readPorts parses SITE_ADDRESS (":8080", "127.0.0.1:8080" or
// "http://127.0.0.1:8080"), BACKEND_URL, S3_ENDPOINT and ADMIN_ADDRESS.
func readPorts(getenv func(k, def string) string) (ports, error) {
	var p ports
	site := getenv("SITE_ADDRESS", ":8080")
	if u, err := url.Parse(site); err == nil && u.Host != "" {
		site = u.Host
	}
	_, port, err := net.SplitHostPort(site)
	if err != nil || port == "" {
		return p, fmt.Errorf("SITE_ADDRESS=%q: want :PORT or HOST:PORT, e.g. :8081", site)
	}
	p.site = port
	for _, v := range []struct {
		name, def string
		dst       *string
	}{{"BACKEND_URL", "http://127.0.0.1:9000", &p.backend}, {"S3_ENDPOINT", "http://127.0.0.1:7070", &p.s3}} {
		raw := getenv(v.name, v.def)
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "http" || u.Port() == "" || u.Path != "" && u.Path != "/" {
			return p, fmt.Errorf("%s=%q: want http://HOST:PORT, e.g. %s", v.name, raw, v.def)
		}
		*v.dst = u.Host
	}
	p.admin = getenv("ADMIN_ADDRESS", "localhost:2019")
	if _, port, err := net.SplitHostPort(p.admin); err != nil || port == "" {
		return p, fmt.Errorf("ADMIN_ADDRESS=%q: want HOST:PORT, e.g. localhost:2020", p.admin)
	}
	return p, nil
}

// checkFree fails, naming the variable that moves it, when one of the
// demo's ports is already taken: started anyway, another Caddy on the
// admin port would answer half of the admin calls, and another server on
// the S3 or site port would answer in the demo's place.
func checkFree(p ports) error {
	for _, c := range []struct{ addr, what, variable, example string }{
		{"127.0.0.1:" + p.site, "the site", "SITE_ADDRESS", "SITE_ADDRESS=:8081"},
		{p.backend, "the example backend", "BACKEND_URL", "BACKEND_URL=http://127.0.0.1:9001"},
		{p.s3, "S3 (versitygw)", "S3_ENDPOINT", "S3_ENDPOINT=http://127.0.0.1:7071"},
		{p.admin, "Caddy's admin API", "ADMIN_ADDRESS", "ADMIN_ADDRESS=localhost:2020"},
	} {
		l, err := net.Listen("tcp", c.addr)
		if err != nil {
			return fmt.Errorf("%s is already in use (port for %s): stop what listens there, or move it with %s, e.g. `%s make demo`",
				c.addr, c.what, c.variable, c.example)
		}
		l.Close()
	}
	return nil
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("demo: ")
	root := testkit.RepoRoot()
	data := filepath.Join(root, ".cache", "demo")
	p, err := readPorts(getenv)
	if err != nil {
		log.Fatal(err)
	}
	if err := checkFree(p); err != nil {
		log.Fatal(err)
	}
	site, backendAddr, admin := p.site, p.backend, p.admin
	_, s3p, _ := net.SplitHostPort(p.s3)
	s3Port, _ := strconv.Atoi(s3p)
	bucket := getenv("S3_BUCKET", "uploads")

	if err := os.MkdirAll(data, 0o755); err != nil {
		log.Fatal(err)
	}
	testkit.LogDir = data
	s3, err := testkit.StartVersity(filepath.Join(data, "s3"), s3Port)
	if err != nil {
		log.Fatal(err)
	}
	defer s3.Stop(5 * time.Second)
	origins := []string{"http://127.0.0.1:" + site, "http://localhost:" + site}
	if err := s3.CreateBucket(context.Background(), bucket, origins...); err != nil {
		log.Fatal(err)
	}
	log.Printf("S3 (versitygw)   %s  bucket %q, CORS for %v", s3.URL, bucket, origins)

	// A fresh webhook secret per run, shared by Caddy (signs) and the
	// backend (verifies).
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		log.Fatal(err)
	}
	webhookSecret := "whsec_" + base64.StdEncoding.EncodeToString(secret)
	backend, err := testkit.Start([]string{"BACKEND_ADDR=" + backendAddr, "WEBHOOK_SECRET=" + webhookSecret}, testkit.Bin("BACKEND_BIN", "backend"), "-addr", backendAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Stop(5 * time.Second)
	if err := testkit.WaitHTTP("http://"+backendAddr+"/healthz", 200, 10*time.Second); err != nil {
		log.Fatalf("backend: %v\n%s", err, backend.Output())
	}
	log.Printf("legacy backend   http://%s", backendAddr)

	// The operator console's login: a fresh password per run, hashed with
	// `caddy hash-password` as an operator would.
	pw := make([]byte, 12)
	if _, err := rand.Read(pw); err != nil {
		log.Fatal(err)
	}
	consoleUser, consolePass := getenv("CONSOLE_USER", "operator"), base64.RawURLEncoding.EncodeToString(pw)
	consoleHash, err := testkit.RunCaddy(nil, "hash-password", "--plaintext", consolePass)
	if err != nil {
		log.Fatalf("caddy hash-password: %v %s", err, consoleHash)
	}

	env := []string{
		"CONSOLE_USER=" + consoleUser,
		"CONSOLE_PASSWORD_HASH=" + strings.TrimSpace(consoleHash),
		"WEBHOOK_SECRET=" + webhookSecret,
		"SITE_ADDRESS=:" + site,
		"ADMIN_ADDRESS=" + admin,
		"BACKEND_URL=http://" + backendAddr,
		"S3_ENDPOINT=" + s3.URL,
		"S3_BUCKET=" + bucket,
		"AWS_REGION=" + s3.Region,
		"AWS_ACCESS_KEY_ID=" + s3.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3.SecretKey,
		"XDG_DATA_HOME=" + filepath.Join(data, "caddy-data"),
		"XDG_CONFIG_HOME=" + filepath.Join(data, "caddy-config"),
	}
	caddy, err := testkit.StartCaddy(filepath.Join(root, "Caddyfile.example"), admin, env)
	if err != nil {
		log.Fatal(err)
	}
	defer caddy.Stop(10 * time.Second)

	fmt.Printf("\n  Open http://127.0.0.1:%s/ and upload an image.\n", site)
	fmt.Printf("  Operator console: http://127.0.0.1:%s/_console/  (user %s, password %s)\n", site, consoleUser, consolePass)
	fmt.Printf("  Logs: %s/{caddy,backend,versitygw}.log\n  Ctrl-C stops S3, the backend and Caddy.\n\n", data)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			log.Print("stopping")
			return
		case <-tick.C:
			for name, p := range map[string]*testkit.Proc{"caddy": caddy.Proc, "backend": backend, "versitygw": s3.Proc} {
				if p.Exited() {
					log.Printf("%s exited:\n%s", name, p.Output())
					return
				}
			}
		}
	}
}
