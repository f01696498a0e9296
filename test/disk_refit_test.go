//go:build linux

package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/internal/diskspace"
	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/leaf"
)

// requireUserNamespaces fails the test, rather than skipping it, when
// this system cannot make the user and mount namespace the tmpfs tests
// need: the guarantee they check would silently go untested.
func requireUserNamespaces(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("needs unshare(1) (util-linux) for a user and mount namespace: %v", err)
	}
	if out, err := exec.Command("unshare", "-rm", "true").CombinedOutput(); err != nil {
		t.Fatalf("unshare -rm: %v %s: this test needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or a container allowed to unshare)", err, out)
	}
}

// fillDisk writes a file of size bytes at path (real data: tmpfs would
// not allocate a sparse file).
func fillDisk(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	chunk := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(left, int64(len(chunk)))]); err != nil {
			f.Close()
			return fmt.Errorf("fill %s: %w", path, err)
		}
	}
	return f.Close()
}

// TestDiskFilledWhileRunning: the edge starts on a 16 MiB filesystem and
// fits its buffer budget to it; while it is offline with a backlog,
// another program fills the filesystem. The edge cuts the budget at its
// next refit, but not below what the buffer holds; publishers get a clean
// "maximum bytes exceeded", not an I/O error; JetStream stays enabled;
// after the link heals every acknowledged message reaches the cloud once
// and in order. When the other program's file goes, the budget is raised
// back and the edge takes new messages.
func TestDiskFilledWhileRunning(t *testing.T) {
	requireUserNamespaces(t)
	p, bundle, cloud := hubBehindProxy(t)

	l, data := startLeafOnTmpfs(t, "16m", bundle, "TETHER_PING_INTERVAL=500ms", "TETHER_RECONNECT_INTERVAL=250ms",
		"TETHER_BUDGET_REFIT_INTERVAL=250ms")
	// The tmpfs exists in the edge's mount namespace only; the edge's
	// /proc/<pid>/root reaches it (the pid is unshare's, which exec'd the
	// test binary, which exec'd tether).
	fs := filepath.Join("/proc", fmt.Sprint(l.proc.cmd.Process.Pid), "root", filepath.Dir(data))
	filler := filepath.Join(fs, "filler")
	fitted := l.proc.stderr.jsonLine("msg", "buffer budget reduced to fit the filesystem", nil)
	if fitted == nil {
		t.Fatal("no log line about the buffer budget on a 16 MiB filesystem")
	}
	budget := int64(fitted["budget_bytes"].(float64))
	st := l.waitStatus(t, 20*time.Second, "link up", func(st leaf.Status) error {
		if !st.Link.Connected {
			return errors.New("link down")
		}
		return nil
	})
	if st.Buffer.MaxBytes != budget {
		t.Fatalf("status budget %d, want the fitted %d", st.Buffer.MaxBytes, budget)
	}
	js, err := jetstream.New(l.nc, jetstream.WithPublishAsyncMaxPending(256))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := fillUntilRefused(t, js, "p1", 0, 1024, 100); n != 100 || err != nil {
		t.Fatalf("linked: %d of 100 stored: %v", n, err)
	}
	l.waitStatus(t, 10*time.Second, "linked messages forwarded", func(st leaf.Status) error {
		if st.Buffer.BacklogMsgs != 0 {
			return fmt.Errorf("backlog %d msgs", st.Buffer.BacklogMsgs)
		}
		return nil
	})

	// Offline, a backlog of ~3 MiB builds up.
	p.SetMode(netproxy.Cut)
	l.waitStatus(t, 15*time.Second, "link down", func(st leaf.Status) error {
		if st.Link.Connected {
			return errors.New("link still up")
		}
		return nil
	})
	const acked = 3100
	if n, err := fillUntilRefused(t, js, "p1", 100, 1024, acked); n != acked || err != nil {
		t.Fatalf("offline: %d of %d stored: %v", n, acked, err)
	}
	backlog := l.waitStatus(t, 5*time.Second, "backlog", func(st leaf.Status) error {
		if st.Buffer.BacklogMsgs != acked-100 {
			return fmt.Errorf("backlog %d msgs", st.Buffer.BacklogMsgs)
		}
		return nil
	}).Buffer.BacklogBytes

	// Another program leaves 1 MiB free: 3/4 of the room (free space plus
	// the store) minus the commands stream's share is less than the
	// backlog, so the budget stops at the backlog.
	free, err := diskspace.Free(fs)
	if err != nil {
		t.Fatal(err)
	}
	if err := fillDisk(filler, int64(free)-1<<20); err != nil {
		t.Fatal(err)
	}
	filled := time.Now()
	// A refit may run while the filler is half written and cut less; the
	// one that sees it whole holds the budget at the backlog.
	cut := l.proc.waitLogJSONWhere(t, "buffer budget cut to fit the filesystem", 10*time.Second,
		func(line map[string]any) bool { return line["held_at_backlog"] == true })
	t.Logf("filler of %d bytes written; budget cut %s later: %v", int64(free)-1<<20, time.Since(filled).Round(time.Millisecond), cut)
	if got := int64(cut["budget_bytes"].(float64)); got != int64(backlog) || cut["held_at_backlog"] != true {
		t.Fatalf("budget cut to %d (held at backlog %v), want the backlog's %d bytes", got, cut["held_at_backlog"], backlog)
	}
	refusedAt, pubErr := fillUntilRefused(t, js, "p1", acked, 1024, acked+100)
	if refusedAt != acked || pubErr == nil || !strings.Contains(pubErr.Error(), "maximum bytes exceeded") {
		t.Fatalf("publish on the filled disk: %d stored, then %v; want a 'maximum bytes exceeded' refusal at once", refusedAt-acked, pubErr)
	}
	st = l.waitStatus(t, 5*time.Second, "budget cut in the status", func(st leaf.Status) error {
		if st.Buffer.MaxBytes != int64(backlog) || !st.Buffer.Full || st.Buffer.BacklogMsgs != acked-100 {
			return fmt.Errorf("buffer %+v", st.Buffer)
		}
		return nil
	})
	t.Logf("status on the filled disk: budget %d, backlog %d msgs / %d bytes, disk free %d, full %v",
		st.Buffer.MaxBytes, st.Buffer.BacklogMsgs, st.Buffer.BacklogBytes, st.Buffer.DiskFree, st.Buffer.Full)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("the edge's JetStream after the cut: %v", err)
	}

	p.SetMode(netproxy.Pass)
	l.waitStatus(t, 30*time.Second, "backlog drained", func(st leaf.Status) error {
		if !st.Link.Connected || st.Buffer.BacklogMsgs != 0 {
			return fmt.Errorf("link up %v, buffer %+v", st.Link.Connected, st.Buffer)
		}
		return nil
	})
	binaryWaitFor(t, 30*time.Second, "the cloud to hold everything acknowledged", func() error {
		if n := crashCloudCount(t, cloud, "plant-7"); n != acked {
			return fmt.Errorf("cloud holds %d of %d", n, acked)
		}
		return nil
	})
	// With the backlog gone, nothing holds the budget up: it follows the
	// filled disk down.
	st = l.waitStatus(t, 5*time.Second, "budget fitted to the filled disk", func(st leaf.Status) error {
		if st.Buffer.MaxBytes >= int64(backlog) {
			return fmt.Errorf("budget %d, backlog %d bytes", st.Buffer.MaxBytes, st.Buffer.BacklogBytes)
		}
		return nil
	})
	t.Logf("backlog drained on the filled disk: budget %d", st.Buffer.MaxBytes)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	raised := l.proc.waitLogJSON(t, "buffer budget raised: the filesystem has room again", 10*time.Second)
	t.Logf("filler removed; budget raised %s later: %v", time.Since(freed).Round(time.Millisecond), raised)
	// The store's own files now take some of the room the empty
	// filesystem had at start: within 1% of the budget fitted then.
	if got := int64(raised["budget_bytes"].(float64)); got > budget || got < budget*99/100 {
		t.Fatalf("budget raised to %d, want the %d fitted at start (within 1%%)", got, budget)
	}
	const total = acked + 500
	if n, err := fillUntilRefused(t, js, "p1", acked, 1024, total); n != total || err != nil {
		t.Fatalf("after the raise: %d of %d stored: %v", n-acked, total-acked, err)
	}
	expectCloudExactly(t, l, cloud, total)
}
