package testkit

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// echoServer answers each line with the same line and counts the bytes it
// received.
func echoServer(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var got atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					got.Add(int64(len(line)))
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), &got
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func roundTrip(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the echo of %q: %v", msg, err)
	}
	return line
}

// TestStallProxy: it forwards; stalled, it holds old and new connections
// open, reads what they send and forwards none of it; resumed, it closes
// the held connections and forwards new ones.
func TestStallProxy(t *testing.T) {
	target, got := echoServer(t)
	p, err := StartStallProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	addr := p.URL[len("http://"):]
	old, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if line := roundTrip(t, old, "hello"); line != "hello\n" {
		t.Fatalf("echo through the proxy: %q", line)
	}
	before := got.Load()

	p.Stall()
	waitUntil(t, "the open connection held", func() bool { return p.Held() == 1 })
	fresh, err := net.Dial("tcp", addr) // accepted, held
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	waitUntil(t, "the new connection held", func() bool { return p.Held() == 2 })
	for _, c := range []net.Conn{old, fresh} {
		if _, err := io.WriteString(c, "stuck\n"); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "both requests read by the proxy", func() bool { return p.StuckRequests() == 2 })
	if n := got.Load(); n != before {
		t.Fatalf("the server received %d bytes during the stall", n-before)
	}
	fresh.Close() // a client giving up
	waitUntil(t, "the closed connection no longer held", func() bool { return p.StuckOpen() == 1 && p.Held() == 1 })

	p.Resume()
	old.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := old.Read(make([]byte, 16)); err == nil {
		t.Fatalf("the held connection answered %d bytes after the stall; want it closed", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the held connection stayed open after the stall")
	}
	waitUntil(t, "no connection held", func() bool { return p.Held() == 0 })
	again, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if line := roundTrip(t, again, "back"); line != "back\n" {
		t.Fatalf("echo after the stall: %q", line)
	}
	if n := got.Load() - before; n != int64(len("back\n")) {
		t.Fatalf("the server received %d bytes after the stall, want only the new request's", n)
	}
}
