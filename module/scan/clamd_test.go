package scan

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClamd is a tiny clamd for protocol edge cases: it reads the command
// and the chunks, records them, and answers what answer says (or, when
// limit is set, stops reading after limit bytes and answers the size
// error, as clamd does).
type fakeClamd struct {
	ln     net.Listener
	answer func(data []byte) string
	limit  int
	silent bool // never answer

	mu      sync.Mutex
	cmds    []string
	chunks  [][]int // chunk sizes per connection
	streams [][]byte
}

func startFake(t *testing.T, network string, answer func([]byte) string) *fakeClamd {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "clamd.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeClamd{ln: ln, answer: answer}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeClamd) client() *Client {
	return &Client{Network: f.ln.Addr().Network(), Address: f.ln.Addr().String()}
}

func (f *fakeClamd) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	cmd, err := readUntilNUL(c)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.cmds = append(f.cmds, cmd)
	f.mu.Unlock()
	if cmd == "zPING" {
		c.Write([]byte("PONG\x00"))
		return
	}
	var data bytes.Buffer
	var sizes []int
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		sizes = append(sizes, n)
		if n == 0 {
			break
		}
		if f.limit > 0 && data.Len()+n > f.limit {
			c.Write([]byte("INSTREAM size limit exceeded. ERROR\x00"))
			return
		}
		if _, err := io.CopyN(&data, c, int64(n)); err != nil {
			return
		}
	}
	f.mu.Lock()
	f.chunks = append(f.chunks, sizes)
	f.streams = append(f.streams, data.Bytes())
	f.mu.Unlock()
	if f.silent {
		io.Copy(io.Discard, c) // until the client gives up
		return
	}
	c.Write([]byte(f.answer(data.Bytes())))
}

func readUntilNUL(c net.Conn) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for len(b) < 64 {
		if _, err := c.Read(one); err != nil {
			return "", err
		}
		if one[0] == 0 {
			return string(b), nil
		}
		b = append(b, one[0])
	}
	return "", errors.New("command too long")
}

func markerAnswer(data []byte) string {
	if bytes.Contains(data, []byte("MARKER")) {
		return "stream: Test.Marker.UNOFFICIAL FOUND\x00"
	}
	return "stream: OK\x00"
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestScanChunksTheStream: the bytes arrive intact, in chunks of the
// configured size (the last one short), ended by one zero-length chunk;
// an exact multiple of the chunk size sends no short chunk, and an empty
// stream sends only the terminator.
func TestScanChunksTheStream(t *testing.T) {
	f := startFake(t, "tcp", markerAnswer)
	c := f.client()
	c.ChunkSize = 10
	cases := []struct {
		data  []byte
		sizes []int
	}{
		{bytes.Repeat([]byte("a"), 25), []int{10, 10, 5, 0}},
		{bytes.Repeat([]byte("b"), 20), []int{10, 10, 0}},
		{nil, []int{0}},
	}
	for i, tc := range cases {
		res, err := c.Scan(ctxT(t), bytes.NewReader(tc.data))
		if err != nil || !res.Clean() {
			t.Fatalf("case %d: Scan = %+v, %v; want clean", i, res, err)
		}
		f.mu.Lock()
		got, stream, cmd := f.chunks[i], f.streams[i], f.cmds[i]
		f.mu.Unlock()
		if cmd != "zINSTREAM" {
			t.Errorf("case %d: command %q, want zINSTREAM", i, cmd)
		}
		if !equalInts(got, tc.sizes) {
			t.Errorf("case %d: chunk sizes %v, want %v", i, got, tc.sizes)
		}
		if !bytes.Equal(stream, tc.data) {
			t.Errorf("case %d: clamd got %d bytes, want %d", i, len(stream), len(tc.data))
		}
	}
}

// TestScanFound: a FOUND answer names the signature.
func TestScanFound(t *testing.T) {
	f := startFake(t, "tcp", markerAnswer)
	res, err := f.client().Scan(ctxT(t), strings.NewReader("xx MARKER yy"))
	if err != nil || res.Found != "Test.Marker.UNOFFICIAL" || res.Clean() {
		t.Fatalf("Scan = %+v, %v; want Found Test.Marker.UNOFFICIAL", res, err)
	}
}

// TestScanOverUnixSocket: unix:// addresses work the same.
func TestScanOverUnixSocket(t *testing.T) {
	f := startFake(t, "unix", markerAnswer)
	c, err := Parse("unix://" + f.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Scan(ctxT(t), strings.NewReader("MARKER"))
	if err != nil || res.Found == "" {
		t.Fatalf("Scan = %+v, %v; want found", res, err)
	}
	if err := c.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// TestScanSizeLimitIsRefused: clamd's StreamMaxLength answer (sent while
// the client is still writing, then the connection closes) is ErrRefused,
// never clean and never "unavailable".
func TestScanSizeLimitIsRefused(t *testing.T) {
	f := startFake(t, "tcp", markerAnswer)
	f.limit = 100
	c := f.client()
	c.ChunkSize = 64
	_, err := c.Scan(ctxT(t), bytes.NewReader(make([]byte, 4<<20)))
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "size limit") {
		t.Fatalf("Scan = %v; want ErrRefused naming the size limit", err)
	}
}

// TestScanAnswers: every kind of answer maps to its outcome.
func TestScanAnswers(t *testing.T) {
	cases := []struct {
		answer string
		found  string
		err    error
	}{
		{"stream: OK\x00", "", nil},
		{"stream: OK", "", nil}, // closed without NUL
		{"stream: Eicar-Test-Signature FOUND\x00", "Eicar-Test-Signature", nil},
		{"stream:  FOUND\x00", "", ErrProtocol},
		{"Can't allocate memory ERROR\x00", "", ErrRefused},
		{"UNKNOWN COMMAND\x00", "", ErrProtocol},
		{"", "", ErrUnavailable}, // closed without a word
		{strings.Repeat("x", maxReply+10), "", ErrProtocol},
	}
	for _, tc := range cases {
		f := startFake(t, "tcp", func([]byte) string { return tc.answer })
		res, err := f.client().Scan(ctxT(t), strings.NewReader("data"))
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("answer %.40q: err %v, want %v", tc.answer, err, tc.err)
			}
			continue
		}
		if err != nil || res.Found != tc.found {
			t.Errorf("answer %.40q: %+v, %v; want found %q", tc.answer, res, err, tc.found)
		}
	}
}

// TestScanUnreachable: no clamd listening is ErrUnavailable.
func TestScanUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = (&Client{Network: "tcp", Address: addr}).Scan(ctxT(t), strings.NewReader("x"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Scan = %v; want ErrUnavailable", err)
	}
}

// TestScanSilentScannerTimesOut: a clamd that never answers is cut off by
// the context, as ErrUnavailable.
func TestScanSilentScannerTimesOut(t *testing.T) {
	f := startFake(t, "tcp", markerAnswer)
	f.silent = true
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := f.client().Scan(ctx, strings.NewReader("x"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Scan = %v; want ErrUnavailable", err)
	}
}

// TestScanSourceError: a failing source is ErrSource, not a verdict.
func TestScanSourceError(t *testing.T) {
	f := startFake(t, "tcp", markerAnswer)
	r := io.MultiReader(strings.NewReader("abc"), errReader{})
	_, err := f.client().Scan(ctxT(t), r)
	if !errors.Is(err, ErrSource) {
		t.Fatalf("Scan = %v; want ErrSource", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestParse(t *testing.T) {
	good := map[string]string{
		"tcp://127.0.0.1:3310":              "tcp://127.0.0.1:3310",
		"unix:///run/clamav/clamd.ctl":      "unix:///run/clamav/clamd.ctl",
		"tcp://clamav.internal:3310":        "tcp://clamav.internal:3310",
		"tcp://[::1]:3310":                  "tcp://[::1]:3310",
		"unix:///var/run/clamd.scan/c.sock": "unix:///var/run/clamd.scan/c.sock",
	}
	for in, want := range good {
		c, err := Parse(in)
		if err != nil || c.String() != want {
			t.Errorf("Parse(%q) = %v, %v; want %s", in, c, err, want)
		}
	}
	for _, in := range []string{"", "127.0.0.1:3310", "tcp://127.0.0.1", "http://x:1", "unix://host/path", "unix://", "tcp://h:1/p"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded; want an error", in)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
