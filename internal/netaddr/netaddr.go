// Package netaddr parses listen addresses for embedded nats-servers.
package netaddr

import (
	"fmt"
	"net"
	"strconv"
)

// Split parses host:port. Port 0 becomes -1, nats-server's "any free port".
func Split(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q: want host:port", addr)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port must be 0-65535", addr)
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}

// IsLoopback reports whether host is a loopback name or address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckFree fails with the listener's own error (e.g. "address already in
// use") when host:port cannot be bound now; port -1 (any) always passes.
// nats-server only logs a failed bind, so callers check first to fail fast
// with a clear message.
func CheckFree(host string, port int) error {
	if port <= 0 {
		return nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return ln.Close()
}
