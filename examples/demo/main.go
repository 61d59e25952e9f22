// Command demo runs the whole product on this machine: versitygw (an
// S3-compatible server) with a bucket and CORS for the demo origin, the
// example legacy backend, and Caddy with Caddyfile.example. It prints the
// URL to open and stops everything it started on Ctrl-C.
//
// `make demo` builds the binaries and runs it; `make demo-fleet` runs it
// with -fleet (fleet.go).
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"log"
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

func main() {
	log.SetFlags(0)
	fleet := flag.Bool("fleet", false, "run two sidecar instances on one PostgreSQL behind a load balancer (fleet.go)")
	flag.Parse()
	if *fleet {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		mainFleet(ctx)
		return
	}
	root := testkit.RepoRoot()
	data := filepath.Join(root, ".cache", "demo")
	site := getenv("DEMO_PORT", "8080")
	backendAddr := getenv("BACKEND_ADDR", "127.0.0.1:9000")
	s3URL, err := url.Parse(getenv("S3_ENDPOINT", "http://127.0.0.1:7070"))
	if err != nil {
		log.Fatal(err)
	}
	s3Port, _ := strconv.Atoi(s3URL.Port())
	bucket := getenv("S3_BUCKET", "uploads")
	admin := getenv("ADMIN_ADDRESS", "127.0.0.1:2019")

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
