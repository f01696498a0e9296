//go:build linux

package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/internal/diskspace"
	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// Environment of the re-executed test binary that mounts a small tmpfs
// and execs the real tether binary on it (TestDiskFullChild).
const (
	envDiskMount = "TETHER_TEST_TMPFS_MOUNT" // where to mount it
	envDiskSize  = "TETHER_TEST_TMPFS_SIZE"  // tmpfs size option, e.g. 8m
	envDiskExec  = "TETHER_TEST_TMPFS_EXEC"  // JSON: program and arguments
	// envDiskPlain makes the helper run plain nats-server in process on
	// the tmpfs instead (TestDiskFullPlainNATS).
	envDiskPlain = "TETHER_TEST_TMPFS_PLAIN"
)

// TestDiskFullChild is not a test on its own: run by TestDiskFull as
// 'unshare -rm <test binary> -test.run=^TestDiskFullChild$' (a user and
// mount namespace, so no root is needed and nothing is mounted on the
// host), it mounts a tmpfs and replaces itself with the tether binary.
func TestDiskFullChild(t *testing.T) {
	dir := os.Getenv(envDiskMount)
	if dir == "" {
		t.Skip("helper process of TestDiskFull")
	}
	if os.Getenv(envDiskPlain) != "" {
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+os.Getenv(envDiskSize)); err != nil {
			t.Fatalf("mount tmpfs on %s: %v", dir, err)
		}
		out, _ := json.Marshal(plainNATSOnFullDisk(t, dir))
		fmt.Printf("RESULT %s\n", out)
		return
	}
	var argv []string
	if err := json.Unmarshal([]byte(os.Getenv(envDiskExec)), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("%s: %v", envDiskExec, err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+os.Getenv(envDiskSize)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TETHER_TEST_TMPFS_") {
			env = append(env, kv)
		}
	}
	t.Fatalf("exec %s: %v", argv[0], syscall.Exec(argv[0], argv, env))
}

// startLeafOnTmpfs runs 'tether leaf' with its data dir on a tmpfs of the
// given size, in a namespace of its own.
func startLeafOnTmpfs(t *testing.T, size, bundle string, env ...string) (*crashLeaf, string) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) for a user and mount namespace")
	}
	if out, err := exec.Command("unshare", "-rm", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare -rm: %v %s (user namespaces disabled?)", err, out)
	}
	mount := filepath.Join(t.TempDir(), "small-fs")
	if err := os.Mkdir(mount, 0o700); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(mount, "data")
	argv, _ := json.Marshal([]string{tetherBinary(t), "--log-json", "leaf",
		"--bundle", bundle, "--data", data, "--listen", "127.0.0.1:0"})
	cmd := exec.Command("unshare", "-rm", os.Args[0], "-test.run=^TestDiskFullChild$")
	cmd.Env = append(append(os.Environ(), env...),
		envDiskMount+"="+mount, envDiskSize+"="+size, envDiskExec+"="+string(argv))
	return attachCrashLeaf(t, startProcess(t, "tether leaf on a "+size+" tmpfs", cmd)), data
}

// fillUntilRefused publishes "<name>:<i>" from i = from, each with pad
// bytes of header, keeping a window in flight, until the edge refuses one.
// It returns the first index not acknowledged and the refusal.
func fillUntilRefused(t *testing.T, js jetstream.JetStream, name string, from, pad, limit int) (int, error) {
	t.Helper()
	h := nats.Header{"Pad": []string{strings.Repeat("x", pad)}}
	var window []jetstream.PubAckFuture
	next := from // index of window[0]
	wait := func() error {
		f := window[0]
		select {
		case <-f.Ok():
			window, next = window[1:], next+1
			return nil
		case err := <-f.Err():
			return err
		case <-time.After(30 * time.Second):
			t.Fatalf("publish %d: no answer from the edge in 30s", next)
			return nil
		}
	}
	for i := from; i < limit; i++ {
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: "telemetry." + name, Header: h,
			Data: fmt.Appendf(nil, "%s:%d", name, i)})
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		window = append(window, f)
		if len(window) >= 128 {
			if err := wait(); err != nil {
				return next, err
			}
		}
	}
	for len(window) > 0 {
		if err := wait(); err != nil {
			return next, err
		}
	}
	return next, nil
}

// TestDiskFull: the edge's data dir is on an 8 MiB filesystem while the
// buffer's configured budget is the default 1 GiB. The edge fits the
// budget to the filesystem (and logs it); with the link cut, publishing
// fills the buffer and the local publisher gets a clear "maximum bytes
// exceeded" before the disk is full; 'tether leaf status' shows the buffer
// full; JetStream on the edge is not disabled: after the link heals every
// acknowledged message reaches the cloud once and in order, and the edge
// takes new messages again.
func TestDiskFull(t *testing.T) {
	p, bundle, cloud := hubBehindProxy(t)

	const fsSize = 8 << 20
	l, _ := startLeafOnTmpfs(t, "8m", bundle, "TETHER_PING_INTERVAL=500ms", "TETHER_RECONNECT_INTERVAL=250ms")
	reduced := l.proc.stderr.jsonLine("msg", "buffer budget reduced to fit the filesystem", nil)
	if reduced == nil {
		t.Fatalf("no log line about the buffer budget on a %d-byte filesystem", fsSize)
	}
	budget, _ := reduced["budget_bytes"].(float64)
	if budget <= 0 || budget > fsSize*3/4 {
		t.Fatalf("buffer budget %v on a %d-byte filesystem, want at most 3/4 of it", budget, fsSize)
	}
	t.Logf("budget fitted: %v", reduced)
	st := l.waitStatus(t, 20*time.Second, "link up", func(st leaf.Status) error {
		if !st.Link.Connected {
			return errors.New("link down")
		}
		return nil
	})
	if st.Buffer.MaxBytes != int64(budget) || st.Buffer.DiskFree == 0 {
		t.Fatalf("status buffer budget %d, disk free %d; want %v and > 0", st.Buffer.MaxBytes, st.Buffer.DiskFree, budget)
	}
	js, err := jetstream.New(l.nc, jetstream.WithPublishAsyncMaxPending(256))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := fillUntilRefused(t, js, "p1", 0, 1024, 100); n != 100 || err != nil {
		t.Fatalf("linked: %d of 100 stored: %v", n, err)
	}

	p.SetMode(netproxy.Cut)
	l.waitStatus(t, 15*time.Second, "link down", func(st leaf.Status) error {
		if st.Link.Connected {
			return errors.New("link still up")
		}
		return nil
	})
	refusedAt, pubErr := fillUntilRefused(t, js, "p1", 100, 1024, 100+fsSize/1024)
	if pubErr == nil || !strings.Contains(pubErr.Error(), "maximum bytes exceeded") {
		t.Fatalf("filling the disk offline: %d stored, then %v; want a 'maximum bytes exceeded' refusal", refusedAt, pubErr)
	}
	t.Logf("offline, the edge stored up to message %d, then refused: %v", refusedAt, pubErr)
	st = l.waitStatus(t, 5*time.Second, "buffer full", func(st leaf.Status) error {
		if !st.Buffer.Full {
			return fmt.Errorf("buffer not shown full: %+v", st.Buffer)
		}
		return nil
	})
	t.Logf("status while full: backlog %d msgs / %d bytes, budget %d, disk free %d",
		st.Buffer.BacklogMsgs, st.Buffer.BacklogBytes, st.Buffer.MaxBytes, st.Buffer.DiskFree)
	l.proc.waitLogJSON(t, "telemetry buffer full", 5*time.Second)

	p.SetMode(netproxy.Pass)
	l.waitStatus(t, 60*time.Second, "backlog drained", func(st leaf.Status) error {
		if !st.Link.Connected || st.Buffer.BacklogMsgs != 0 || st.Buffer.Full {
			return fmt.Errorf("link up %v, buffer %+v", st.Link.Connected, st.Buffer)
		}
		return nil
	})
	total := refusedAt + 500
	if n, err := fillUntilRefused(t, js, "p1", refusedAt, 1024, total); n != total || err != nil {
		t.Fatalf("after the condition cleared: %d of %d stored: %v", n-refusedAt, total-refusedAt, err)
	}
	expectCloudExactly(t, l, cloud, total)
}

// hubBehindProxy starts a hub with the edge plant-7, whose bundle dials
// the hub through the returned proxy, and connects to the hub as CLOUD.
func hubBehindProxy(t *testing.T) (p *netproxy.Proxy, bundle string, cloud *nats.Conn) {
	t.Helper()
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	p, err := netproxy.New(strings.TrimPrefix(h.LeafURL(), "tls://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	bundle = tethertest.BundleFile(t, store, "plant-7", []string{"tls://" + p.Addr()}, nil)
	return p, bundle, tethertest.ConnectCloud(t, store, h)
}

// expectCloudExactly waits until the cloud holds total messages of
// plant-7, checks they are p1's 0..total-1 exactly once and in order, and
// that the edge's JetStream never hit its full disk.
func expectCloudExactly(t *testing.T, l *crashLeaf, cloud *nats.Conn, total int) {
	t.Helper()
	binaryWaitFor(t, 30*time.Second, "the cloud to hold everything", func() error {
		if n := crashCloudCount(t, cloud, "plant-7"); n != total {
			return fmt.Errorf("cloud holds %d of %d", n, total)
		}
		return nil
	})
	msgs := crashReadCloud(t, cloud, "plant-7", total, 30*time.Second)
	if err := crashVerify(msgs, total, func(int) bool { return true }); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"DISABLED", "no space left", "Critical write error"} {
		if strings.Contains(l.proc.stderr.String(), bad) {
			t.Errorf("the edge logged %q: JetStream hit the full disk", bad)
		}
	}
}

// plainResult is what plain nats-server did on a full disk.
type plainResult struct {
	Stored          int    `json:"stored"`
	Refusal         string `json:"refusal"`
	JetStreamOn     bool   `json:"jetstream_enabled_after"`
	PublishAfter    string `json:"publish_after_freeing_space"`
	DiskFreeAtError uint64 `json:"disk_free_at_refusal"`
	PurgeErr        string `json:"purge_error,omitempty"`
	// DiskFreeAfterPurge shows whether purging freed the space.
	DiskFreeAfterPurge uint64 `json:"disk_free_after_purge"`
}

// plainNATSOnFullDisk runs nats-server with JetStream on dir, its store
// limit and the stream's MaxBytes set above the filesystem's size (as a
// budget that ignores the disk would), publishes 1 KiB messages until one
// is refused, frees space by purging the stream and publishes once more.
func plainNATSOnFullDisk(t *testing.T, dir string) plainResult {
	var res plainResult
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: filepath.Join(dir, "js"), JetStreamMaxStore: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	op := func() context.Context { // each operation gets 3s
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	st, err := js.CreateStream(op(), jetstream.StreamConfig{Name: "BUF", Subjects: []string{"telemetry.>"},
		Storage: jetstream.FileStorage, MaxBytes: 1 << 29})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 1024)
	for i := 0; i < 64<<10; i++ {
		if _, err := js.Publish(op(), "telemetry.x", payload); err != nil {
			res.Refusal = err.Error()
			break
		}
		res.Stored++
	}
	res.DiskFreeAtError, _ = diskspace.Free(dir)
	if err := st.Purge(op()); err != nil {
		res.PurgeErr = err.Error()
	}
	res.DiskFreeAfterPurge, _ = diskspace.Free(dir)
	res.JetStreamOn = ns.JetStreamEnabled()
	if _, err := js.Publish(op(), "telemetry.x", payload); err != nil {
		res.PublishAfter = err.Error()
	} else {
		res.PublishAfter = "ok"
	}
	return res
}

// TestDiskFullPlainNATS measures what TestDiskFull guards against: plain
// nats-server whose JetStream limits exceed an 8 MiB filesystem, filled
// until a publish is refused. It reports, it does not judge: the figures
// go to the test log and docs/ARCHITECTURE.md.
func TestDiskFullPlainNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a helper process")
	}
	if out, err := exec.Command("unshare", "-rm", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare -rm: %v %s (user namespaces disabled?)", err, out)
	}
	mount := filepath.Join(t.TempDir(), "small-fs")
	if err := os.Mkdir(mount, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "-rm", os.Args[0], "-test.run=^TestDiskFullChild$", "-test.v")
	cmd.Env = append(os.Environ(), envDiskMount+"="+mount, envDiskSize+"=8m", envDiskPlain+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	_, line, ok := strings.Cut(string(out), "RESULT ")
	if !ok {
		t.Fatalf("helper printed no result:\n%s", out)
	}
	line, _, _ = strings.Cut(line, "\n")
	var res plainResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("plain nats-server, 8 MiB tmpfs, limits above the disk: %d x 1 KiB stored, then %q (disk free %d); purge: %q, disk free after it %d; JetStream enabled afterwards: %v; publish after purging: %s",
		res.Stored, res.Refusal, res.DiskFreeAtError, orNone(res.PurgeErr), res.DiskFreeAfterPurge, res.JetStreamOn, res.PublishAfter)
}

func orNone(s string) string {
	if s == "" {
		return "ok"
	}
	return s
}
