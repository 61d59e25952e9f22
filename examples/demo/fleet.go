package main

// Fleet mode (`demo -fleet`, `make demo-fleet`): a throw-away PostgreSQL,
// versitygw, the example backend, two sidecar Caddy instances on
// Caddyfile.fleet.example sharing the PostgreSQL store, and a Caddy load
// balancer on Caddyfile.fleet-lb.example in front of them (round robin).

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// fleetPorts are the ports the fleet demo listens on, all on 127.0.0.1.
type fleetPorts struct {
	Site, SidecarA, SidecarB, Backend, S3, Admin, AdminA, AdminB int
}

// fleetPortsFromEnv reads DEMO_PORT (the load balancer, 8080),
// SIDECAR_A_PORT and SIDECAR_B_PORT (8081, 8082), BACKEND_PORT (9000),
// S3_PORT (7070) and ADMIN_PORT (the load balancer's admin API, 2019; the
// instances' are the next two).
func fleetPortsFromEnv() (fleetPorts, error) {
	var p fleetPorts
	for _, v := range []struct {
		name string
		def  int
		dst  *int
	}{{"DEMO_PORT", 8080, &p.Site}, {"SIDECAR_A_PORT", 8081, &p.SidecarA}, {"SIDECAR_B_PORT", 8082, &p.SidecarB},
		{"BACKEND_PORT", 9000, &p.Backend}, {"S3_PORT", 7070, &p.S3}, {"ADMIN_PORT", 2019, &p.Admin}} {
		*v.dst = v.def
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 65533 {
				return p, fmt.Errorf("%s=%q: want a port number, e.g. %d", v.name, s, v.def+100)
			}
			*v.dst = n
		}
	}
	p.AdminA, p.AdminB = p.Admin+1, p.Admin+2
	return p, nil
}

// checkFleetPorts refuses to start when a port is taken: another server
// there would answer in the demo's place.
func checkFleetPorts(p fleetPorts) error {
	for _, c := range []struct {
		port       int
		what, move string
	}{
		{p.Site, "the load balancer", "DEMO_PORT"}, {p.SidecarA, "sidecar A", "SIDECAR_A_PORT"},
		{p.SidecarB, "sidecar B", "SIDECAR_B_PORT"}, {p.Backend, "the example backend", "BACKEND_PORT"},
		{p.S3, "S3 (versitygw)", "S3_PORT"}, {p.Admin, "the load balancer's admin API", "ADMIN_PORT"},
		{p.AdminA, "sidecar A's admin API", "ADMIN_PORT"}, {p.AdminB, "sidecar B's admin API", "ADMIN_PORT"},
	} {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", c.port))
		if err != nil {
			return fmt.Errorf("port %d (for %s) is already in use: stop what listens there (another demo?) or move it with %s=<port>", c.port, c.what, c.move)
		}
		l.Close()
	}
	return nil
}

// fleetInfo is what a started fleet demo tells its caller.
type fleetInfo struct {
	URL         string // the load balancer
	Sidecars    map[string]string
	S3          string
	DSN         string
	PostgresDir string
}

// runFleet starts the fleet demo, calls ready once everything answers, and
// runs until ctx is done or a process exits; it stops everything it
// started, in reverse order, whatever happens.
func runFleet(ctx context.Context, p fleetPorts, data string, ready func(fleetInfo)) (err error) {
	if err := checkFleetPorts(p); err != nil {
		return err
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	watch := map[string]*testkit.Proc{}
	root := testkit.RepoRoot()

	pg, err := testkit.StartPostgres()
	if err != nil {
		return err
	}
	stops = append(stops, pg.Close)
	info := fleetInfo{URL: fmt.Sprintf("http://127.0.0.1:%d", p.Site), DSN: pg.DSN("demo-fleet"), PostgresDir: pg.Dir,
		Sidecars: map[string]string{}}

	s3, err := testkit.StartVersity(filepath.Join(data, "s3"), p.S3)
	if err != nil {
		return err
	}
	stops = append(stops, func() { s3.Stop(5 * time.Second) })
	watch["versitygw"] = s3.Proc
	info.S3 = s3.URL
	origins := []string{info.URL, fmt.Sprintf("http://localhost:%d", p.Site)}
	if err := s3.CreateBucket(ctx, "uploads", origins...); err != nil {
		return err
	}

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	webhookSecret := "whsec_" + base64.StdEncoding.EncodeToString(secret)
	backendAddr := fmt.Sprintf("127.0.0.1:%d", p.Backend)
	backend, err := testkit.Start([]string{"WEBHOOK_SECRET=" + webhookSecret}, testkit.Bin("BACKEND_BIN", "backend"), "-addr", backendAddr)
	if err != nil {
		return err
	}
	stops = append(stops, func() { backend.Stop(5 * time.Second) })
	watch["backend"] = backend
	if err := testkit.WaitHTTP("http://"+backendAddr+"/healthz", 200, 10*time.Second); err != nil {
		return fmt.Errorf("backend: %w\n%s", err, backend.Output())
	}

	for _, sc := range []struct {
		name        string
		port, admin int
	}{{"sidecar-a", p.SidecarA, p.AdminA}, {"sidecar-b", p.SidecarB, p.AdminB}} {
		env := []string{
			"INSTANCE=" + sc.name,
			"DATABASE_URL=" + pg.DSN(sc.name),
			fmt.Sprintf("SITE_ADDRESS=:%d", sc.port),
			fmt.Sprintf("ADMIN_ADDRESS=127.0.0.1:%d", sc.admin),
			"SWEEP_INTERVAL=10s",
			"WEBHOOK_SECRET=" + webhookSecret,
			"BACKEND_URL=http://" + backendAddr,
			"S3_ENDPOINT=" + s3.URL,
			"S3_BUCKET=uploads",
			"AWS_REGION=" + s3.Region,
			"AWS_ACCESS_KEY_ID=" + s3.AccessKey,
			"AWS_SECRET_ACCESS_KEY=" + s3.SecretKey,
			"XDG_DATA_HOME=" + filepath.Join(data, sc.name, "data"),
			"XDG_CONFIG_HOME=" + filepath.Join(data, sc.name, "config"),
		}
		c, err := testkit.StartCaddy(filepath.Join(root, "Caddyfile.fleet.example"), fmt.Sprintf("127.0.0.1:%d", sc.admin), env)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		stops = append(stops, func() { c.Stop(10 * time.Second) })
		watch[sc.name] = c.Proc
		info.Sidecars[sc.name] = fmt.Sprintf("http://127.0.0.1:%d", sc.port)
	}

	lb, err := testkit.StartCaddy(filepath.Join(root, "Caddyfile.fleet-lb.example"), fmt.Sprintf("127.0.0.1:%d", p.Admin), []string{
		fmt.Sprintf("SITE_ADDRESS=:%d", p.Site),
		fmt.Sprintf("ADMIN_ADDRESS=127.0.0.1:%d", p.Admin),
		fmt.Sprintf("SIDECAR_A=127.0.0.1:%d", p.SidecarA),
		fmt.Sprintf("SIDECAR_B=127.0.0.1:%d", p.SidecarB),
		"XDG_DATA_HOME=" + filepath.Join(data, "lb", "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(data, "lb", "config"),
	})
	if err != nil {
		return fmt.Errorf("load balancer: %w", err)
	}
	stops = append(stops, func() { lb.Stop(10 * time.Second) })
	watch["load balancer"] = lb.Proc
	if err := testkit.WaitHTTP(info.URL+"/healthz", 200, 10*time.Second); err != nil {
		return fmt.Errorf("the backend through the load balancer: %w", err)
	}

	ready(info)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			for name, proc := range watch {
				if proc.Exited() {
					return fmt.Errorf("%s exited:\n%s", name, proc.Output())
				}
			}
		}
	}
}

// mainFleet is `demo -fleet`.
func mainFleet(ctx context.Context) {
	p, err := fleetPortsFromEnv()
	if err != nil {
		log.Fatal(err)
	}
	data := filepath.Join(testkit.RepoRoot(), ".cache", "demo-fleet")
	if err := os.MkdirAll(data, 0o755); err != nil {
		log.Fatal(err)
	}
	testkit.LogDir = data
	err = runFleet(ctx, p, data, func(in fleetInfo) {
		fmt.Printf("\n  Open %s/ and upload an image: the load balancer (round robin) sends each request\n", in.URL)
		fmt.Printf("  to either sidecar; the X-Served-By response header names the one that answered.\n")
		fmt.Printf("  Sidecars:   sidecar-a %s, sidecar-b %s (admin API on 127.0.0.1:%d and :%d)\n",
			in.Sidecars["sidecar-a"], in.Sidecars["sidecar-b"], p.AdminA, p.AdminB)
		fmt.Printf("  PostgreSQL: %s  (psql \"%s\" -c 'table direct_upload_intents')\n", in.DSN, in.DSN)
		fmt.Printf("  S3:         %s (versitygw), bucket \"uploads\"\n", in.S3)
		fmt.Printf("  Logs: %s/{caddy,backend,versitygw}.log\n  Ctrl-C stops everything.\n\n", data)
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
	log.Print("stopped")
}
