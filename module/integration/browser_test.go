package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/testkit"
)

// browserOutcome is one row of the demo page as upload.mjs saw it.
type browserOutcome struct {
	Name        string    `json:"name"`
	Status      string    `json:"status"`
	State       string    `json:"state"`
	MaxProgress float64   `json:"max_progress"`
	Progress    []float64 `json:"progress"`
	Key         string    `json:"key"`
	Detail      string    `json:"detail"`
}

// TestBrowserUploads drives a real Chromium through the demo page served by
// Caddy running Caddyfile.example: the page imports the plugin's client
// (/uploads/direct-upload.js) and uploads, through its file input, a real
// PNG (completed, with progress up to 100), an SVG (type_not_allowed), a
// PNG over max_size (too_large) and HTML named .png (rejected by
// verification). Only the PNG may leave an object in the bucket.
//
// It needs Chromium (apt-get install -y chromium) and the harness's npm
// packages (npm ci --prefix module/integration/browser).
func TestBrowserUploads(t *testing.T) {
	root := testkit.RepoRoot()
	node, harness, chromium := browserHarness(t)

	ctx := context.Background()
	// The page posts forms to the bucket from its own origin.
	if err := s3srv.CreateBucket(ctx, "uploads", exampleURL); err != nil {
		t.Fatal(err)
	}

	files := t.TempDir()
	small := gradientPNG(t, 96, 64)
	writeFile(t, filepath.Join(files, "gradient.png"), small)
	writeFile(t, filepath.Join(files, "drawing.svg"), []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">`+
		`<circle cx="32" cy="32" r="28" fill="#0969da"/></svg>`+"\n"))
	huge := noisePNG(t, 10<<20+1)
	writeFile(t, filepath.Join(files, "huge.png"), huge)
	writeFile(t, filepath.Join(files, "disguised.png"), []byte("<!doctype html><html><body><script>alert(1)</script></body></html>\n"))

	artifacts := filepath.Join(root, "testdata", "artifacts")
	shot := filepath.Join(artifacts, "demo-after-uploads.png")
	_ = os.Remove(shot)
	before := bucketKeys(t)

	out := runHarness(t, node, harness, "--url", exampleURL, "--files", files, "--artifacts", artifacts, "--chromium", chromium)
	var outcomes []browserOutcome
	if err := json.Unmarshal(out, &outcomes); err != nil {
		t.Fatalf("harness output is not the JSON outcomes: %v\n%s", err, out)
	}
	byName := map[string]browserOutcome{}
	for _, o := range outcomes {
		byName[o.Name] = o
		t.Logf("%-13s status=%q max_progress=%v progress=%v key=%q detail=%q", o.Name, o.Status, o.MaxProgress, o.Progress, o.Key, o.Detail)
	}
	if len(byName) != 4 {
		t.Fatalf("want 4 rows, got %d: %s", len(byName), out)
	}

	// (a) a real PNG: completed, progress up to 100, in the bucket.
	img := byName["gradient.png"]
	if img.Status != "completed" || img.MaxProgress != 100 || !strings.HasPrefix(img.Key, "images/") || !strings.HasSuffix(img.Key, ".png") {
		t.Errorf("gradient.png: want completed, progress 100, an images/ key: %+v", img)
	}
	if !slices.IsSorted(img.Progress) || len(img.Progress) == 0 || img.Progress[0] != 0 {
		t.Errorf("gradient.png: progress should start at 0 and never go back: %v", img.Progress)
	}
	if !strings.Contains(img.Detail, "image/png") || !strings.Contains(img.Detail, "Backend: ") {
		t.Errorf("gradient.png: the detail should show the type and the backend's answer: %q", img.Detail)
	}
	if img.Key != "" && !objectExists(t, img.Key) {
		t.Errorf("gradient.png: %s is not in the bucket", img.Key)
	} else if img.Key != "" {
		head, err := s3srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("uploads"), Key: aws.String(img.Key)})
		if err != nil || aws.ToInt64(head.ContentLength) != int64(len(small)) || aws.ToString(head.ContentType) != "image/png" {
			t.Errorf("gradient.png in the bucket: %v, want %d bytes of image/png", err, len(small))
		}
	}

	// (b) an SVG: refused before anything is uploaded.
	if svg := byName["drawing.svg"]; svg.Status != "error: type_not_allowed" || svg.MaxProgress != 0 ||
		!strings.Contains(svg.Detail, "image/svg+xml files are not allowed") {
		t.Errorf("drawing.svg: want error: type_not_allowed and a clear message, progress 0: %+v", svg)
	}
	// (c) over max_size (10 MiB): refused before anything is uploaded.
	if big := byName["huge.png"]; big.Status != "error: too_large" || big.MaxProgress != 0 || !strings.Contains(big.Detail, "too large") {
		t.Errorf("huge.png: want error: too_large and a clear message, progress 0: %+v", big)
	}
	// (d) HTML named .png: uploaded, then rejected and deleted by the server.
	if bad := byName["disguised.png"]; bad.Status != "rejected" || !strings.Contains(bad.Detail, "content_mismatch") ||
		!strings.HasPrefix(bad.Key, "images/") || objectExists(t, bad.Key) {
		t.Errorf("disguised.png: want rejected (content_mismatch), with its object deleted: %+v", bad)
	}

	// Nothing but the PNG was left in the bucket.
	var added []string
	for _, k := range bucketKeys(t) {
		if !slices.Contains(before, k) {
			added = append(added, k)
		}
	}
	if len(added) != 1 || added[0] != img.Key {
		t.Errorf("objects added to the bucket: %q, want only the PNG's %q", added, img.Key)
	}

	// The screenshot is a real PNG.
	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil || cfg.Width < 100 || cfg.Height < 100 {
		t.Fatalf("screenshot %s is not a usable PNG (%d bytes): %v %+v", shot, len(data), err, cfg)
	}
	t.Logf("screenshot: %s (%dx%d)", shot, cfg.Width, cfg.Height)
}

// browserHarness checks what the browser tests need and returns node, the
// harness's directory and Chromium's path. A missing piece fails the test
// with the command that installs it (make test runs them).
func browserHarness(t *testing.T) (node, harness, chromium string) {
	t.Helper()
	harness = filepath.Join(testkit.RepoRoot(), "module", "integration", "browser")
	chromium = os.Getenv("CHROMIUM_BIN")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium is missing (%v): install it with `apt-get install -y chromium` (or set CHROMIUM_BIN)", err)
	}
	if _, err := os.Stat(filepath.Join(harness, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("the browser harness's packages are missing (%v): run `npm ci --prefix module/integration/browser`", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is missing: %v", err)
	}
	return node, harness, chromium
}

// runHarness runs upload.mjs with a 90 s bound (killing Chromium with it)
// and returns its stdout.
func runHarness(t *testing.T, node, dir string, args ...string) []byte {
	t.Helper()
	return runScript(t, node, dir, "upload.mjs", args...)
}

// runScript runs one of the harness's scripts with a 90 s bound (killing
// Chromium with it) and returns its stdout.
func runScript(t *testing.T, node, dir, script string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{script, "--timeout", "80000"}, args...)...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s ran %v; its stderr:\n%s", script, time.Since(start).Round(time.Millisecond), tail(stderr.String(), 60))
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("%s did not finish within 90 s", script)
	}
	if err != nil {
		t.Fatalf("%s failed: %v\n%s", script, err, tail(stderr.String(), 20))
	}
	return bytes.TrimSpace(stdout.Bytes())
}

// bucketKeys lists every key of the bucket.
func bucketKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s3srv.Client(), &s3.ListObjectsV2Input{Bucket: aws.String("uploads")})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("listing the bucket: %v", err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// gradientPNG is a small real image, so the page's thumbnail shows something.
func gradientPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(40 + 200*x/w), uint8(90 + 120*y/h), 210, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// noisePNG is a real, uncompressed PNG of random pixels of at least minSize
// bytes.
func noisePNG(t *testing.T, minSize int) []byte {
	t.Helper()
	const w = 1024
	h := minSize/(w*3) + 1 // opaque: encoded as 3 bytes a pixel
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.Uint32())
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if b.Len() < minSize {
		t.Fatalf("noise PNG has %d bytes, want at least %d", b.Len(), minSize)
	}
	return b.Bytes()
}
