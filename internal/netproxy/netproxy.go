// Package netproxy is a TCP proxy on loopback for fault tests: it forwards
// connections to a target and can black-hole them (bytes are swallowed,
// sockets stay open, as when a cellular link silently dies) or cut them
// (connections are closed and new ones refused) and heal again, or slow
// them down to a given rate.
package netproxy

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Mode is what the proxy does with traffic.
type Mode int

// Proxy modes.
const (
	Pass      Mode = iota // forward everything
	Blackhole             // keep connections open, drop all bytes
	Cut                   // close connections, refuse new ones
	// DropReplies forwards what clients send but swallows what the target
	// sends back: the far side acts on everything, its answers are lost.
	DropReplies
)

// Proxy forwards TCP connections from a loopback listener to a target.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  Mode
	rate  int // bytes per second each way, 0: unlimited
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// SetRate limits each direction of every connection to bytesPerSec, as a
// slow link would (0: no limit). Bytes beyond the rate wait in the proxy
// and in the sockets' buffers, as they would in a modem's.
func (p *Proxy) SetRate(bytesPerSec int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = bytesPerSec
}

func (p *Proxy) currentRate() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate
}

// New starts a proxy on a free loopback port forwarding to target.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetMode switches the proxy's behaviour; Cut closes every open connection.
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	if m == Cut {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *Proxy) current() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.SetMode(Cut)
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == Cut {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			in.Close()
			continue
		}
		out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil || !p.track(out) {
			if out != nil {
				out.Close()
			}
			p.untrack(in)
			continue
		}
		p.wg.Add(2)
		go p.pipe(in, out, false)
		go p.pipe(out, in, true)
	}
}

// pipe copies src to dst, discarding bytes while black-holed (and, for
// the direction back to the client, while dropping replies).
func (p *Proxy) pipe(src, dst net.Conn, back bool) {
	defer p.wg.Done()
	defer p.untrack(src)
	defer p.untrack(dst)
	buf := make([]byte, 32<<10)
	var due time.Time // when the bytes sent so far have passed at the rate
	for {
		chunk := buf
		rate := p.currentRate()
		if rate > 0 {
			// Small reads keep the pace even (a tenth of a second each).
			chunk = buf[:max(1, min(len(buf), rate/10))]
		}
		n, err := src.Read(chunk)
		if m := p.current(); n > 0 && (m == Pass || m == DropReplies && !back) {
			if rate > 0 {
				now := time.Now()
				if due.Before(now) {
					due = now
				}
				due = due.Add(time.Duration(n) * time.Second / time.Duration(rate))
				time.Sleep(time.Until(due)) // the link's pace, not synchronization
			}
			if _, werr := dst.Write(chunk[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
