// Package testkit starts the real components the integration tests and the
// demo run against: a versitygw S3 server that checks signatures and POST
// policies, and the custom Caddy binary. Everything listens on 127.0.0.1, on
// free ports, and is stopped by whoever started it.
package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// RepoRoot returns the repository's top directory (where go.mod is).
func RepoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// Bin returns the path of a tool: $ENV if set, else .cache/bin/name.
func Bin(env, name string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	return filepath.Join(RepoRoot(), ".cache", "bin", name)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portFree fails when something already listens on the port, which would
// otherwise answer the health check in the new server's place.
func portFree(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("port %d is taken (is another demo still running?): %w", port, err)
	}
	return l.Close()
}

// WaitHTTP polls url until it answers with want or the timeout passes.
func WaitHTTP(url string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %v", url, timeout, last)
}

// Proc is a started child process whose output is kept for diagnosis.
type Proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// maxKept bounds the output kept in memory: a long benchmark's logs are
// cut to their last part.
const maxKept = 4 << 20

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len()+len(p) > maxKept {
		rest := append([]byte(nil), s.b.Bytes()[s.b.Len()/2:]...)
		s.b.Reset()
		s.b.Write(rest)
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// LogDir, when set, receives a copy of every started process's output in
// <program>.log, so a person can follow the demo's logs.
var LogDir string

// Start runs a command with env added to the current environment.
func Start(env []string, name string, args ...string) (*Proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out := new(syncBuffer)
	var w io.Writer = out
	if LogDir != "" {
		f, err := os.OpenFile(filepath.Join(LogDir, filepath.Base(name)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		w = io.MultiWriter(out, f)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Output returns what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to grace, then kills the process group.
func (p *Proc) Stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Kill ends the process at once with SIGKILL.
func (p *Proc) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Versity is a running versitygw.
type Versity struct {
	*Proc
	URL       string
	Port      int
	AccessKey string
	SecretKey string
	Region    string
	DataDir   string
}

// StartVersity starts versitygw with the posix backend on dataDir (created
// if needed) and port (0: a free one), and waits until it is healthy.
func StartVersity(dataDir string, port int) (*Versity, error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	} else if err := portFree(port); err != nil {
		return nil, err
	}
	v := &Versity{Port: port, URL: fmt.Sprintf("http://127.0.0.1:%d", port),
		AccessKey: "testkit-access", SecretKey: "testkit-secret-key-0123456789", Region: "us-east-1", DataDir: dataDir}
	p, err := Start(nil, Bin("VERSITYGW_BIN", "versitygw"),
		"--access", v.AccessKey, "--secret", v.SecretKey,
		"--port", fmt.Sprintf("127.0.0.1:%d", port), "--region", v.Region,
		"--health", "/health", "--quiet", "posix", dataDir)
	if err != nil {
		return nil, err
	}
	v.Proc = p
	if err := WaitHTTP(v.URL+"/health", 200, 15*time.Second); err != nil {
		p.Stop(time.Second)
		return nil, fmt.Errorf("versitygw: %w\n%s", err, p.Output())
	}
	return v, nil
}

// Client returns an S3 client with the server's root credentials.
func (v *Versity) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       v.Region,
		BaseEndpoint: aws.String(v.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(v.AccessKey, v.SecretKey, ""),
	})
}

// CreateBucket creates a bucket, allowing browsers of origins to POST
// forms to it and to read the ETag header (needed by multipart uploads).
func (v *Versity) CreateBucket(ctx context.Context, name string, origins ...string) error {
	c := v.Client()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		var owned *types.BucketAlreadyOwnedByYou
		if !errors.As(err, &owned) && !strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") {
			return fmt.Errorf("creating bucket %s: %w", name, err)
		}
	}
	if len(origins) == 0 {
		return nil
	}
	_, err := c.PutBucketCors(ctx, &s3.PutBucketCorsInput{
		Bucket: aws.String(name),
		CORSConfiguration: &types.CORSConfiguration{CORSRules: []types.CORSRule{{
			AllowedOrigins: origins,
			AllowedMethods: []string{"POST", "PUT", "GET", "HEAD"},
			AllowedHeaders: []string{"*"},
			ExposeHeaders:  []string{"ETag", "Location"},
			MaxAgeSeconds:  aws.Int32(3000),
		}}},
	})
	if err != nil {
		return fmt.Errorf("setting CORS on %s: %w", name, err)
	}
	return nil
}

// Caddy is a running custom Caddy binary.
type Caddy struct {
	*Proc
	Bin       string
	AdminAddr string
	Config    string
	env       []string
}

// StartCaddy runs the Caddy binary on the Caddyfile at config with env
// added, and waits until its admin endpoint at adminAddr answers.
func StartCaddy(config, adminAddr string, env []string) (*Caddy, error) {
	c := &Caddy{Bin: Bin("CADDY_BIN", "caddy"), AdminAddr: adminAddr, Config: config, env: env}
	p, err := Start(env, c.Bin, "run", "--config", config, "--adapter", "caddyfile")
	if err != nil {
		return nil, err
	}
	c.Proc = p
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := WaitHTTP("http://"+adminAddr+"/config/", 200, 200*time.Millisecond)
		if err == nil {
			return c, nil
		}
		if p.Exited() || time.Now().After(deadline) {
			p.Stop(time.Second)
			return nil, fmt.Errorf("caddy did not start: %v\n%s", err, p.Output())
		}
	}
}

// Run runs a caddy subcommand (validate, reload, adapt ...) with the same
// environment and returns its combined output.
func (c *Caddy) Run(args ...string) (string, error) {
	return RunCaddy(c.env, args...)
}

// RunCaddy runs the Caddy binary with args and env added.
func RunCaddy(env []string, args ...string) (string, error) {
	cmd := exec.Command(Bin("CADDY_BIN", "caddy"), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// PostForm posts a browser-style multipart form to an S3 POST URL: the
// fields (in sorted order), then the file last with its content type.
// It returns the status and the response body.
//
// versitygw's posix backend creates a key's missing parent directories
// without tolerating a concurrent creator (and removes them again once
// empty, as promotion's staging deletes make them), so one of two
// simultaneous first uploads under a prefix is refused with 409
// ExistingObjectIsDirectory; a browser would try again, and so does this,
// a few times.
func PostForm(url string, fields map[string]string, contentType string, data []byte) (int, string, error) {
	for try := 1; ; try++ {
		status, body, err := postForm(url, fields, contentType, data)
		if err != nil || status != http.StatusConflict || !strings.Contains(body, "ExistingObjectIsDirectory") || try == 5 {
			return status, body, err
		}
		time.Sleep(time.Duration(try) * 20 * time.Millisecond)
	}
}

func postForm(url string, fields map[string]string, contentType string, data []byte) (int, string, error) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := w.WriteField(k, fields[k]); err != nil {
			return 0, "", err
		}
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="file"; filename="upload"`)
	h.Set("Content-Type", contentType)
	part, err := w.CreatePart(h)
	if err != nil {
		return 0, "", err
	}
	part.Write(data)
	w.Close()
	resp, err := http.Post(url, w.FormDataContentType(), &body)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), nil
}

// StartCaddyNoWait runs the Caddy binary like StartCaddy but returns at
// once, without waiting for the admin endpoint: a test can kill it while
// it is still starting (opening its store).
func StartCaddyNoWait(config, adminAddr string, env []string) (*Caddy, error) {
	c := &Caddy{Bin: Bin("CADDY_BIN", "caddy"), AdminAddr: adminAddr, Config: config, env: env}
	p, err := Start(env, c.Bin, "run", "--config", config, "--adapter", "caddyfile")
	if err != nil {
		return nil, err
	}
	c.Proc = p
	return c, nil
}

// AdminUp reports whether the admin endpoint answers right now.
func (c *Caddy) AdminUp() bool {
	cl := http.Client{Timeout: 500 * time.Millisecond}
	resp, err := cl.Get("http://" + c.AdminAddr + "/config/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// MountTmpfs mounts a tmpfs of size bytes on dir (created if needed): a
// small filesystem a test can fill. It needs root. The returned function
// unmounts it (lazily, so a process still holding files open cannot keep
// it mounted).
func MountTmpfs(dir string, size int64) (func() error, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		return nil, fmt.Errorf("mounting a %d-byte tmpfs on %s (needs root): %w", size, dir, err)
	}
	return func() error { return syscall.Unmount(dir, syscall.MNT_DETACH) }, nil
}

// FillDisk writes the file path until its filesystem is full (ENOSPC) and
// returns how many bytes it wrote.
func FillDisk(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			// Fill the last partial block too.
			for _, sz := range []int{4096, 512, 1} {
				for {
					w, err := f.Write(buf[:sz])
					n += int64(w)
					if err != nil {
						break
					}
				}
			}
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
