package test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// These tests build the real tether binary and run it as child processes:
// what an operator runs, with its signal handling, exit codes and sockets.

// devInfo mirrors what 'tether dev' writes to <dir>/dev.json (DevInfo in
// cmd/tether/dev.go).
type devInfo struct {
	Hub struct {
		ClientURL string `json:"client_url"`
		Creds     string `json:"creds"`
		CA        string `json:"ca"`
	} `json:"hub"`
	Edges []struct {
		Name      string `json:"name"`
		ClientURL string `json:"client_url"`
	} `json:"edges"`
}

func (d devInfo) edgeURL(t *testing.T, name string) string {
	t.Helper()
	for _, e := range d.Edges {
		if e.Name == name {
			return e.ClientURL
		}
	}
	t.Fatalf("dev.json has no edge %s: %+v", name, d.Edges)
	return ""
}

// leafStatus is the part of 'tether leaf status --json' the tests read.
type leafStatus struct {
	Edge string `json:"edge"`
	Link struct {
		Connected bool   `json:"connected"`
		Transport string `json:"transport"`
	} `json:"link"`
}

// TestBinaryDev runs 'tether dev' and uses the fabric it describes in
// dev.json: edge-to-cloud and cloud-to-edge messages, leaf status, and a
// clean exit on Ctrl-C.
func TestBinaryDev(t *testing.T) {
	dir := t.TempDir()
	dev := startBinary(t, "tether dev", "dev", "--dir", dir, "--random-ports")

	infoPath := filepath.Join(dir, "dev.json")
	var info devInfo
	binaryWaitFor(t, 30*time.Second, "dev.json", func() error {
		if dev.exited() {
			t.Fatalf("tether dev exited (%v) before writing dev.json", dev.err)
		}
		data, err := os.ReadFile(infoPath)
		if err != nil {
			return err
		}
		return json.Unmarshal(data, &info)
	})
	if fi, err := os.Stat(infoPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("dev.json: stat = %v, %v; want mode 0600", fi, err)
	}

	cloud := binaryConnect(t, info.Hub.ClientURL, nats.UserCredentials(info.Hub.Creds), nats.RootCAs(info.Hub.CA))
	devA := binaryConnect(t, info.edgeURL(t, "dev-a"))
	devB := binaryConnect(t, info.edgeURL(t, "dev-b"))

	t.Run("telemetry reaches the cloud", func(t *testing.T) {
		up := binarySubscribe(t, cloud, "edges.dev-a.telemetry.t")
		m := publishUntilReceived(t, devA, "telemetry.t", up)
		if m.Subject != "edges.dev-a.telemetry.t" {
			t.Errorf("cloud got subject %q, want edges.dev-a.telemetry.t", m.Subject)
		}
	})
	t.Run("commands reach the edge", func(t *testing.T) {
		down := binarySubscribe(t, devB, "cmd.x")
		m := publishUntilReceived(t, cloud, "edges.dev-b.cmd.x", down)
		if m.Subject != "cmd.x" {
			t.Errorf("dev-b got subject %q, want cmd.x", m.Subject)
		}
	})
	t.Run("leaf status", func(t *testing.T) {
		out := runBinary(t, "leaf", "status", "--url", info.edgeURL(t, "dev-a"), "--json")
		var st leafStatus
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("leaf status --json: %v\n%s", err, out)
		}
		if st.Edge != "dev-a" || !st.Link.Connected || st.Link.Transport != "tls" {
			t.Errorf("leaf status = %+v, want edge dev-a connected over tls\n%s", st, out)
		}
		// The table gives sizes in human units (--json keeps bytes).
		table := string(runBinary(t, "leaf", "status", "--url", info.edgeURL(t, "dev-a")))
		human := regexp.MustCompile(`, \d+(\.\d)? (B|[KMGT]iB) waiting .* budget \d+\.\d [KMGT]iB, disk free \d+(\.\d)? (B|[KMGT]iB)\n`)
		if !human.MatchString(table) {
			t.Errorf("leaf status: want the buffer's sizes in human units:\n%s", table)
		}
	})
	t.Run("fleet status", func(t *testing.T) {
		// The JSON fields a script reads: every edge linked, its own
		// backlog reported (0), state ok.
		var fleet []map[string]any
		binaryWaitFor(t, 20*time.Second, "both edges ok in 'tether status --json'", func() error {
			out := runBinary(t, "status", "--dev", "--dev-dir", dir, "--json")
			if err := json.Unmarshal(out, &fleet); err != nil {
				t.Fatalf("status --json: %v\n%s", err, out)
			}
			if len(fleet) != 2 {
				return fmt.Errorf("%d edges in %s, want dev-a and dev-b", len(fleet), out)
			}
			for _, e := range fleet {
				if e["state"] != "ok" || e["online"] != true || e["backlog_msgs"] != 0.0 ||
					e["backlog_bytes"] != 0.0 || e["report_age"] == nil || e["reported_at"] == nil {
					return fmt.Errorf("edge %v: want state ok, online, backlog_msgs 0, backlog_bytes 0, report_age and reported_at set:\n%s", e["edge"], out)
				}
			}
			return nil
		})
		table := string(runBinary(t, "status", "--dev", "--dev-dir", dir))
		for _, col := range []string{"STATE", "LINK", "BACKLOG", "BYTES/BUDGET", "OLDEST", "REPORTED", "LAST ERROR"} {
			if !strings.Contains(table, col) {
				t.Errorf("status table has no %s column:\n%s", col, table)
			}
		}
		t.Logf("tether status:\n%s", table)
	})
	t.Run("edge ls as the hubs see it", func(t *testing.T) {
		var rows []map[string]any
		out := runBinary(t, "edge", "ls", "--dev", "--dev-dir", dir, "--json")
		if err := json.Unmarshal(out, &rows); err != nil {
			t.Fatalf("edge ls --json: %v\n%s", err, out)
		}
		if len(rows) != 2 {
			t.Fatalf("edge ls: %d edges, want dev-a and dev-b:\n%s", len(rows), out)
		}
		for _, r := range rows {
			since, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(r["since"]))
			if r["online"] != true || r["hub"] == nil || r["rtt"] == nil || r["version"] == nil || since.IsZero() || time.Since(since) > time.Hour {
				t.Errorf("edge %v: want online with hub, rtt, version and a recent since:\n%s", r["name"], out)
			}
		}
		table := string(runBinary(t, "edge", "ls", "--dev", "--dev-dir", dir))
		if f := strings.Fields(table); len(f) < 2 || f[0] != "NAME" || f[1] != "LINK" || !strings.Contains(table, "online") {
			t.Errorf("edge ls --dev table:\n%s", table)
		}
	})

	cloud.Close()
	devA.Close()
	devB.Close()
	if code := dev.signalAndWait(t, os.Interrupt, 10*time.Second); code != 0 {
		t.Errorf("tether dev exited with %d after SIGINT, want 0", code)
	}
}

// TestBinaryLeafListensOnLoopbackOnly checks the sockets of a running edge:
// it listens for local clients and dials out to the hubs, and nothing at
// the site but this host can reach it.
func TestBinaryLeafListensOnLoopbackOnly(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads listening sockets from /proc")
	}
	leaf, ready := startBinaryLeaf(t)

	client, err := netip.ParseAddrPort(trimScheme(t, ready["client"]))
	if err != nil {
		t.Fatalf("edge ready: client %v: %v", ready["client"], err)
	}
	listeners := tcpListeners(t, leaf.cmd.Process.Pid)
	t.Logf("tether leaf (pid %d) listens on %v", leaf.cmd.Process.Pid, listeners)
	if len(listeners) == 0 {
		t.Fatalf("tether leaf (pid %d) has no listening TCP socket; want its client port %s", leaf.cmd.Process.Pid, client)
	}
	loopback := map[netip.Addr]bool{netip.MustParseAddr("127.0.0.1"): true, netip.MustParseAddr("::1"): true}
	sawClient := false
	for _, l := range listeners {
		if !loopback[l.Addr()] {
			t.Errorf("tether leaf listens on %s, want only 127.0.0.1 or ::1 (all listeners: %v)", l, listeners)
		}
		sawClient = sawClient || l == client
	}
	if !sawClient {
		t.Errorf("listeners %v do not include the client address %s from 'edge ready'", listeners, client)
	}
}

// TestBinaryLeafSIGTERM checks that an edge stops cleanly and promptly on
// SIGTERM (what systemd and container runtimes send), even with its hub
// unreachable.
func TestBinaryLeafSIGTERM(t *testing.T) {
	leaf, _ := startBinaryLeaf(t)
	if code := leaf.signalAndWait(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("tether leaf exited with %d after SIGTERM, want 0", code)
	}
	if leaf.stderr.jsonLine("msg", "edge stopped", nil) == nil {
		t.Errorf("tether leaf did not log \"edge stopped\" on SIGTERM")
	}
}

// startBinaryLeaf makes a store and an edge bundle with the binary, starts
// 'tether leaf' on a free loopback port (its hub, at the fabric's default
// URL, need not be up) and returns it with its "edge ready" log line.
func startBinaryLeaf(t *testing.T) (*binaryProcess, map[string]any) {
	t.Helper()
	dir := t.TempDir()
	store, bundle := filepath.Join(dir, "store"), filepath.Join(dir, "plant-7.bundle")
	runBinary(t, "init", "--dir", store)
	runBinary(t, "edge", "add", "plant-7", "--dir", store, "--out", bundle)
	leaf := startBinary(t, "tether leaf", "--log-json", "leaf",
		"--bundle", bundle, "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0")
	ready := leaf.waitLogJSON(t, "edge ready", 30*time.Second)
	return leaf, ready
}

// trimScheme returns the host:port of a nats:// URL from a log line.
func trimScheme(t *testing.T, v any) string {
	t.Helper()
	s, _ := v.(string)
	hostPort, ok := strings.CutPrefix(s, "nats://")
	if !ok {
		t.Fatalf("client URL %q: want nats://host:port", s)
	}
	return hostPort
}

// binaryConnect connects a NATS client and closes it at cleanup.
func binaryConnect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append(opts, nats.Timeout(5*time.Second))...)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// binarySubscribe subscribes synchronously and flushes, so the
// subscription is known to the server it is connected to.
func binarySubscribe(t *testing.T, nc *nats.Conn, subj string) *nats.Subscription {
	t.Helper()
	sub, err := nc.SubscribeSync(subj)
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		t.Fatalf("subscribe %s: %v", subj, err)
	}
	return sub
}
