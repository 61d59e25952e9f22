// Package scan is a client of clamd, ClamAV's daemon, speaking its INSTREAM
// command: the bytes are sent in chunks (a 4-byte big-endian length, then
// the data), ended by a zero-length chunk, and clamd answers
// "stream: OK" or "stream: <signature> FOUND", each ended by a NUL (the
// "z" form of the command). Nothing is buffered whole: each chunk is read
// from the source and written before the next.
//
// clamd refuses a stream longer than its StreamMaxLength (25 MiB by
// default) with "INSTREAM size limit exceeded"; that is ErrRefused here,
// not a clean result.
package scan

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// DefaultChunkSize is the size of each INSTREAM chunk.
const DefaultChunkSize = 64 << 10

// maxReply bounds clamd's answer; a longer one is a protocol error.
const maxReply = 4096

var (
	// ErrUnavailable wraps failures to reach clamd or to hear its answer
	// (refused connection, timeout, connection closed): nothing was
	// learned about the bytes, and trying again later may work.
	ErrUnavailable = errors.New("scanner unavailable")
	// ErrRefused wraps an answer of clamd that is an error about this
	// stream (size limit exceeded, or any "... ERROR"): trying the same
	// bytes again gives the same answer.
	ErrRefused = errors.New("scanner refused the stream")
	// ErrProtocol wraps an answer clamd's protocol does not have.
	ErrProtocol = errors.New("unexpected answer from scanner")
	// ErrSource wraps a failure to read the bytes to scan.
	ErrSource = errors.New("reading the bytes to scan failed")
)

// Result is clamd's verdict on a stream.
type Result struct {
	// Found is the matching signature's name; empty means clean.
	Found string
}

// Clean reports whether no signature matched.
func (r Result) Clean() bool { return r.Found == "" }

// Client talks to one clamd.
type Client struct {
	// Network is "tcp" or "unix"; Address is host:port or a socket path.
	Network, Address string
	// ChunkSize is the INSTREAM chunk size. Default: DefaultChunkSize.
	ChunkSize int
}

// Parse reads a clamd address: tcp://host:port or unix:///path/to/socket.
func Parse(addr string) (*Client, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("clamd address %q: %v", addr, err)
	}
	switch u.Scheme {
	case "tcp":
		if u.Host == "" || u.Port() == "" || u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("clamd address %q: want tcp://host:port", addr)
		}
		return &Client{Network: "tcp", Address: u.Host}, nil
	case "unix":
		if u.Host != "" || u.Path == "" {
			return nil, fmt.Errorf("clamd address %q: want unix:///path/to/clamd.socket", addr)
		}
		return &Client{Network: "unix", Address: u.Path}, nil
	}
	return nil, fmt.Errorf("clamd address %q: want tcp://host:port or unix:///path/to/socket", addr)
}

// String is the address in the form Parse reads.
func (c *Client) String() string {
	if c.Network == "unix" {
		return "unix://" + c.Address
	}
	return c.Network + "://" + c.Address
}

// Ping asks clamd whether it is there.
func (c *Client) Ping(ctx context.Context) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	reply, err := readReply(conn)
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("%w: %q", ErrProtocol, reply)
	}
	return nil
}

// Scan streams r to clamd and returns its verdict. ctx bounds the whole
// exchange (connect, stream, answer).
func (c *Client) Scan(ctx context.Context, r io.Reader) (Result, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	werr := c.send(conn, r)
	if errors.Is(werr, ErrSource) {
		return Result{}, werr
	}
	// Even when a write failed, clamd may have answered why before it
	// closed the connection (the size limit): read what it said.
	reply, rerr := readReply(conn)
	if rerr != nil {
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		}
		if werr != nil {
			return Result{}, werr
		}
		return Result{}, rerr
	}
	return parseReply(reply)
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.Network, c.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	return conn, nil
}

// send writes the command, the chunks and the terminating empty chunk.
func (c *Client) send(conn net.Conn, r io.Reader) error {
	size := c.ChunkSize
	if size <= 0 {
		size = DefaultChunkSize
	}
	w := bufio.NewWriterSize(conn, size+4)
	if _, err := w.WriteString("zINSTREAM\x00"); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	buf := make([]byte, 4+size)
	for {
		n, err := io.ReadFull(r, buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf[:4], uint32(n))
			if _, werr := w.Write(buf[:4+n]); werr != nil {
				return fmt.Errorf("%w: %v", ErrUnavailable, werr)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSource, err)
		}
	}
	binary.BigEndian.PutUint32(buf[:4], 0)
	if _, err := w.Write(buf[:4]); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// readReply reads one NUL-terminated answer (or one ended by the
// connection closing, as some clamd versions do on errors).
func readReply(conn net.Conn) (string, error) {
	br := bufio.NewReader(io.LimitReader(conn, maxReply+1))
	s, err := br.ReadString(0)
	switch {
	case err == nil:
		return strings.TrimSpace(strings.TrimSuffix(s, "\x00")), nil
	case err == io.EOF && strings.TrimSpace(s) != "":
		if len(s) > maxReply {
			return "", fmt.Errorf("%w: answer longer than %d bytes", ErrProtocol, maxReply)
		}
		return strings.TrimSpace(s), nil
	case err == io.EOF:
		return "", fmt.Errorf("%w: connection closed without an answer", ErrUnavailable)
	}
	return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// parseReply reads "stream: OK", "stream: <name> FOUND" or "... ERROR".
func parseReply(reply string) (Result, error) {
	switch {
	case strings.HasSuffix(reply, " ERROR"):
		return Result{}, fmt.Errorf("%w: %s", ErrRefused, strings.TrimSuffix(reply, " ERROR"))
	case reply == "stream: OK":
		return Result{}, nil
	case strings.HasPrefix(reply, "stream: ") && strings.HasSuffix(reply, " FOUND"):
		name := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(reply, "stream: "), " FOUND"))
		if name == "" {
			return Result{}, fmt.Errorf("%w: %q", ErrProtocol, reply)
		}
		return Result{Found: name}, nil
	}
	return Result{}, fmt.Errorf("%w: %q", ErrProtocol, reply)
}
