package testkit

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// StallProxy is a TCP proxy on 127.0.0.1 in front of a server (an S3
// endpoint), for tests of what happens when that server stops answering
// without closing anything: a hung S3, a network path that drops packets.
//
// While forwarding it copies bytes both ways. Stall makes it forward
// nothing: every open connection stays open, what either side sends is
// read and dropped, and new connections are accepted and held open the
// same way. A client sees its request written and no answer, ever; only
// its own timeout ends the wait. Resume closes the connections that were
// open during the stall (as a real outage ends: those connections are
// reset) and forwards new ones again.
type StallProxy struct {
	// URL is http://127.0.0.1:port of the proxy.
	URL    string
	ln     net.Listener
	target string

	mu      sync.Mutex
	stalled bool
	closed  bool
	conns   map[*proxyConn]struct{}
	wg      sync.WaitGroup
	// requests counts connections that sent bytes while held.
	requests atomic.Int64
}

type proxyConn struct {
	held atomic.Bool
	sent atomic.Bool // sent bytes while held

	mu         sync.Mutex
	client, up net.Conn // up is nil until dialled, and for one accepted while stalled
	closed     bool
}

func (c *proxyConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	c.client.Close()
	if c.up != nil {
		c.up.Close()
	}
}

// setUp records the dialled server side; false if the connection was
// closed meanwhile (up is closed then).
func (c *proxyConn) setUp(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		up.Close()
		return false
	}
	c.up = up
	return true
}

// StartStallProxy listens on a free port of 127.0.0.1 and forwards to
// target (host:port).
func StartStallProxy(target string) (*StallProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &StallProxy{URL: "http://" + ln.Addr().String(), ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *StallProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		pc := &proxyConn{client: c}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		stalled := p.stalled
		pc.held.Store(stalled)
		p.conns[pc] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(pc, !stalled)
	}
}

// serve pumps one connection both ways until either side closes (or
// the proxy closes it).
func (p *StallProxy) serve(pc *proxyConn, dial bool) {
	defer p.wg.Done()
	defer func() {
		pc.close()
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	if dial {
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			return
		}
		if !pc.setUp(up) {
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.pump(pc, pc.client, up, false)
		}()
		p.pump(pc, up, pc.client, true)
		pc.close()
		<-done
		return
	}
	p.pump(pc, nil, pc.client, true)
}

// pump copies src to dst while the connection is not held, and reads and
// drops what src sends while it is. fromClient marks the client's side,
// whose bytes while held count as a request that got stuck.
func (p *StallProxy) pump(pc *proxyConn, dst, src net.Conn, fromClient bool) {
	defer pc.close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if pc.held.Load() || dst == nil {
				if fromClient && !pc.sent.Swap(true) {
					p.requests.Add(1)
				}
			} else if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Stall stops all forwarding: open and new connections are held open and
// what they send is dropped.
func (p *StallProxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = true
	for pc := range p.conns {
		pc.held.Store(true)
	}
}

// Resume closes the connections held by the stall and forwards new ones.
func (p *StallProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = false
	for pc := range p.conns {
		if pc.held.Load() {
			pc.close()
		}
	}
}

// Held is how many connections the stall holds open right now; a
// client that gives up closes its side and is no longer counted.
func (p *StallProxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for pc := range p.conns {
		if pc.held.Load() {
			n++
		}
	}
	return n
}

// StuckOpen is how many held connections that sent a request while held
// are still open: the client has not given up on them yet.
func (p *StallProxy) StuckOpen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for pc := range p.conns {
		if pc.held.Load() && pc.sent.Load() {
			n++
		}
	}
	return n
}

// StuckRequests is how many held connections sent something while held
// (a request that will never be answered), since the proxy started.
func (p *StallProxy) StuckRequests() int { return int(p.requests.Load()) }

// Close stops the proxy and closes every connection.
func (p *StallProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for pc := range p.conns {
		pc.close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

// String names the proxy and its target, for messages.
func (p *StallProxy) String() string { return fmt.Sprintf("stall proxy %s -> %s", p.URL, p.target) }
