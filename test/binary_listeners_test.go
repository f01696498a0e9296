package test

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// tcpListeners returns the TCP sockets in LISTEN state that process pid
// holds open, read from /proc/<pid>/fd and /proc/<pid>/net/tcp{,6}.
func tcpListeners(t *testing.T, pid int) []netip.AddrPort {
	t.Helper()
	inodes := socketInodes(t, pid)
	var out []netip.AddrPort
	for _, table := range []string{"tcp", "tcp6"} {
		path := filepath.Join("/proc", strconv.Itoa(pid), "net", table)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		entries, err := parseProcNetTCP(string(data))
		if err != nil {
			t.Fatalf("parse %s: %v", path, err)
		}
		for _, e := range entries {
			if e.state == tcpListen && inodes[e.inode] {
				out = append(out, e.local)
			}
		}
	}
	return out
}

// socketInodes returns the inodes of the sockets among pid's open files.
func socketInodes(t *testing.T, pid int) map[string]bool {
	t.Helper()
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list open files of pid %d: %v", pid, err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil {
			continue // closed since ReadDir
		}
		if inode, ok := strings.CutPrefix(target, "socket:["); ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	return inodes
}

// tcpListen is the LISTEN state in /proc/net/tcp.
const tcpListen = "0A"

type procTCPEntry struct {
	local netip.AddrPort
	state string
	inode string
}

// parseProcNetTCP parses the text of /proc/net/tcp or /proc/net/tcp6.
func parseProcNetTCP(text string) ([]procTCPEntry, error) {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	var out []procTCPEntry
	for _, line := range lines[1:] { // the first line is the header
		f := strings.Fields(line)
		if len(f) < 10 {
			return nil, fmt.Errorf("short line %q", line)
		}
		local, err := parseProcAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		out = append(out, procTCPEntry{local: local, state: f[3], inode: f[9]})
	}
	return out, nil
}

// parseProcAddr parses an address such as 0100007F:1F90 (127.0.0.1:8080):
// the IP is hex in 32-bit words of host byte order (little-endian on every
// platform Tether supports), the port is hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("address %q: want IP:PORT", s)
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil || (len(raw) != net.IPv4len && len(raw) != net.IPv6len) {
		return netip.AddrPort{}, fmt.Errorf("address %q: bad IP", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: bad port", s)
	}
	ip, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

func TestParseProcNetTCP(t *testing.T) {
	const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:8B23 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 23307 1 0000000000000000 100 0 0 10 0
   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 47 1 0000000000000000 100 0 0 10 0
   2: 0100007F:A227 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 23231 1 0000000000000000 20 4 30 10 -1
`
	const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 556 1 0000000000000000 100 0 0 10 0
`
	for _, tc := range []struct {
		name, text string
		want       []procTCPEntry
	}{
		{"tcp", tcp, []procTCPEntry{
			{netip.MustParseAddrPort("127.0.0.1:35619"), "0A", "23307"},
			{netip.MustParseAddrPort("0.0.0.0:2024"), "0A", "47"},
			{netip.MustParseAddrPort("127.0.0.1:41511"), "01", "23231"},
		}},
		{"tcp6", tcp6, []procTCPEntry{
			{netip.MustParseAddrPort("[::1]:8080"), "0A", "555"},
			{netip.MustParseAddrPort("[::]:8081"), "0A", "556"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcNetTCP(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
