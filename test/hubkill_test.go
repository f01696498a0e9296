package test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// hubProcess is a real 'tether hub' child process of a cluster.
type hubProcess struct {
	name                           string
	args                           []string
	client, leaf, cluster, dataDir string
	proc                           *binaryProcess
}

// startHubProcesses runs n 'tether hub' processes clustered on loopback,
// each on its own data dir, and waits until each has its CLOUD streams.
func startHubProcesses(t *testing.T, store *accounts.Store, n int) []*hubProcess {
	t.Helper()
	hubs := make([]*hubProcess, n)
	var routes []string
	for i := range hubs {
		h := &hubProcess{name: fmt.Sprintf("hub-%d", i+1), client: tethertest.FreeAddr(t), leaf: tethertest.FreeAddr(t),
			cluster: tethertest.FreeAddr(t), dataDir: filepath.Join(t.TempDir(), "data")}
		routes = append(routes, "tls://"+h.cluster)
		hubs[i] = h
	}
	for _, h := range hubs {
		h.args = []string{"--log-json", "hub", "--name", h.name, "--store", store.Dir(), "--data", h.dataDir,
			"--listen", h.client, "--leaf-listen", h.leaf, "--websocket-listen", hub.Off, "--monitor-listen", hub.Off,
			"--cluster-listen", h.cluster, "--routes", strings.Join(routes, ",")}
		h.start(t)
	}
	for _, h := range hubs {
		h.waitReady(t)
	}
	return hubs
}

func (h *hubProcess) start(t *testing.T) {
	t.Helper()
	h.proc = startBinary(t, h.name, h.args...)
}

// waitReady waits until the hub logged that its COMMANDS stream (the last
// it creates) is ready.
func (h *hubProcess) waitReady(t *testing.T) {
	t.Helper()
	h.proc.waitLogJSONWhere(t, "cloud stream ready", 60*time.Second,
		func(l map[string]any) bool { return l["stream"] == "COMMANDS" })
}

// TestHubSIGKILLDuringCatchUp: a 3-hub cluster of real processes; while an
// edge catches up a backlog, the hub leading the TELEMETRY stream is killed
// with SIGKILL (no lame duck, nothing flushed). The edge re-attaches, a new
// leader is elected, and the cloud ends with every message exactly once,
// in order; the killed hub, started again on its data, catches up.
func TestHubSIGKILLDuringCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("3 hub processes: skipped in -short")
	}
	const backlog = 20000
	store := tethertest.NewStore(t)
	tethertest.AddEdge(t, store, "plant-7")
	hubs := startHubProcesses(t, store, 3)
	var urls []string
	var proxies []*netproxy.Proxy
	for _, h := range hubs {
		p, err := netproxy.New(h.leaf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		proxies, urls = append(proxies, p), append(urls, "tls://"+p.Addr())
	}
	l := backlogBehind(t, store, proxies, urls, backlog)

	// Whoever leads TELEMETRY is killed once the catch-up is under way.
	cloudAt := func(h *hubProcess) *nats.Conn {
		nc, err := nats.Connect("tls://"+h.client, nats.UserCredentials(store.CloudCredsFile()), nats.RootCAs(store.CAFile()),
			nats.MaxReconnects(-1))
		if err != nil {
			t.Fatalf("connect to %s: %v", h.name, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	nc := cloudAt(hubs[0])
	js, err := jetstream.NewWithDomain(nc, contract.CloudDomain)
	if err != nil {
		t.Fatal(err)
	}
	leaderOf := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, contract.TelemetryStream)
		if err != nil {
			return "", err
		}
		if s.CachedInfo().Cluster == nil || s.CachedInfo().Cluster.Leader == "" {
			return "", fmt.Errorf("no leader")
		}
		return s.CachedInfo().Cluster.Leader, nil
	}
	var leader string
	tethertest.WaitFor(t, 30*time.Second, func() (err error) { leader, err = leaderOf(); return err })

	for _, p := range proxies {
		p.SetMode(netproxy.Pass)
	}
	tethertest.WaitFor(t, 30*time.Second, func() error {
		if st := l.Status().Buffer; st.Forwarded < backlog/10 {
			return fmt.Errorf("catch-up not under way: %+v", st)
		}
		return nil
	})
	var victim *hubProcess
	for _, h := range hubs {
		if h.name == leader {
			victim = h
		}
	}
	if victim == nil {
		t.Fatalf("TELEMETRY leader %q is none of the hubs", leader)
	}
	left := l.Status().Buffer.BacklogMsgs
	killed := time.Now()
	if err := victim.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.proc.done
	t.Logf("SIGKILLed %s (TELEMETRY leader) with %d of %d messages still on the edge", victim.name, left, backlog)

	// The cloud, read through a surviving hub, ends with everything once.
	var survivor *hubProcess
	for _, h := range hubs {
		if h != victim {
			survivor = h
			break
		}
	}
	cloud := cloudAt(survivor)
	tethertest.WaitFor(t, 60*time.Second, func() error {
		if st := l.Status().Buffer; st.BacklogMsgs != 0 {
			return fmt.Errorf("edge backlog %d, link %+v, last error %q", st.BacklogMsgs, l.Link(), st.LastError)
		}
		return nil
	})
	t.Logf("edge backlog drained %s after the SIGKILL", time.Since(killed).Round(10*time.Millisecond))
	msgs := crashReadCloud(t, cloud, "plant-7", backlog, 60*time.Second)
	if err := crashVerify(msgs, backlog, func(int) bool { return true }); err != nil {
		t.Fatal(err)
	}

	// The killed hub comes back on its data and its replica catches up.
	restarted := time.Now()
	victim.start(t)
	victim.waitReady(t)
	tethertest.WaitFor(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		cjs, err := jetstream.NewWithDomain(cloud, contract.CloudDomain)
		if err != nil {
			return err
		}
		s, err := cjs.Stream(ctx, contract.TelemetryStream)
		if err != nil {
			return err
		}
		info := s.CachedInfo()
		if info.Cluster == nil {
			return fmt.Errorf("no cluster info")
		}
		for _, r := range info.Cluster.Replicas {
			if r.Name == victim.name && r.Current && r.Lag == 0 && !r.Offline {
				return nil
			}
		}
		return fmt.Errorf("%s's replica not current yet: leader %s, replicas %+v", victim.name, info.Cluster.Leader, info.Cluster.Replicas)
	})
	t.Logf("%s restarted after SIGKILL; its TELEMETRY replica current %s later", victim.name, time.Since(restarted).Round(10*time.Millisecond))
}
