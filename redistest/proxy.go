package redistest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy on 127.0.0.1 that forwards every connection to one
// loopback target, and can partition or drop those connections on demand.
// When either side of a proxied connection closes, the proxy closes both.
//
// A Proxy is safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	ctx    context.Context // canceled by Close; aborts dials to the target
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection goroutine

	mu     sync.Mutex              // protects following fields
	resume chan struct{}           // closed while not paused
	conns  map[*proxyConn]struct{} // open proxied connections
	closed bool                    // Close was called
}

type proxyConn struct {
	client net.Conn      // accepted from the proxy's listener
	done   chan struct{} // closed by close

	mu     sync.Mutex // protects following fields
	server net.Conn   // dialed to the target; nil until then
	closed bool
}

// NewProxy starts a proxy to target, which must be a loopback address such
// as a Server's Addr. It is closed when the test completes.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		t.Fatalf("redistest: proxy target %q: %v", target, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		t.Fatalf("redistest: proxy target %q is not a loopback address", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	resume := make(chan struct{})
	close(resume)
	p := &Proxy{
		target: target,
		ln:     ln,
		ctx:    ctx,
		cancel: cancel,
		resume: resume,
		conns:  make(map[*proxyConn]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's address, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Pause partitions the network silently: no byte, and no close, is forwarded
// in either direction, and nothing is closed. New connections are accepted
// but not connected to the target. What was read meanwhile is forwarded on
// Resume, as TCP would after a partition heals. Pausing a paused proxy does
// nothing.
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.resume:
		p.resume = make(chan struct{})
	default: // already paused
	}
}

// Resume ends a Pause. Resuming a proxy that is not paused does nothing.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.resume:
	default:
		close(p.resume)
	}
}

// CloseAll resets every proxied connection at once, on both sides (with
// SO_LINGER 0, so peers see ECONNRESET rather than EOF where the platform
// allows). The proxy keeps accepting new connections.
func (p *Proxy) CloseAll() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
		delete(p.conns, pc)
	}
	p.mu.Unlock()
	for _, pc := range conns {
		pc.close(true)
	}
}

// Conns returns the number of open proxied connections, including those
// accepted during a Pause and not yet connected to the target.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops the proxy: it closes the listener and every connection, and
// waits for all its goroutines. Dialing Addr afterwards fails. Close is
// idempotent and is called when the test completes.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return
	}
	p.closed = true
	conns := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
		delete(p.conns, pc)
	}
	p.mu.Unlock()

	p.cancel()
	p.ln.Close()
	for _, pc := range conns {
		pc.close(false)
	}
	p.wg.Wait()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed by Close
		}
		pc := &proxyConn{client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.conns[pc] = struct{}{}
		p.wg.Add(1) // before Close can Wait: both happen under p.mu
		p.mu.Unlock()
		go p.serve(pc)
	}
}

func (p *Proxy) serve(pc *proxyConn) {
	defer p.wg.Done()
	defer p.remove(pc)

	if !p.waitResumed(pc) {
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		return
	}
	if !pc.setServer(server) {
		return
	}
	p.wg.Add(1) // pc is open, so Close has not finished waiting
	go func() {
		defer p.wg.Done()
		p.copy(pc, server, pc.client)
	}()
	p.copy(pc, pc.client, server)
}

// copy forwards src to dst while not paused, then closes pc.
func (p *Proxy) copy(pc *proxyConn, dst, src net.Conn) {
	defer pc.close(false)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if !p.waitResumed(pc) {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// waitResumed blocks while the proxy is paused. It reports false if pc or
// the proxy was closed meanwhile.
func (p *Proxy) waitResumed(pc *proxyConn) bool {
	p.mu.Lock()
	resume := p.resume
	p.mu.Unlock()
	select {
	case <-resume:
	case <-pc.done:
		return false
	}
	select {
	case <-pc.done:
		return false
	default:
		return true
	}
}

func (p *Proxy) remove(pc *proxyConn) {
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
	pc.close(false)
}

// setServer records the connection to the target, or closes it and reports
// false if pc was closed meanwhile.
func (pc *proxyConn) setServer(server net.Conn) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		server.Close()
		return false
	}
	pc.server = server
	return true
}

// close closes both sides; with reset, it sets SO_LINGER 0 first so the
// peers get a RST. It is idempotent.
func (pc *proxyConn) close(reset bool) {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return
	}
	pc.closed = true
	server := pc.server
	close(pc.done)
	pc.mu.Unlock()

	for _, c := range []net.Conn{pc.client, server} {
		if c == nil {
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok && reset {
			tc.SetLinger(0) //nolint:errcheck // best effort
		}
		c.Close()
	}
}
