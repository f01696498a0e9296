package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/tethertest"
)

// runCLI runs the tether CLI in process and returns its exit code, stdout
// and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestPubWaitsForTheVerdict: 'tether pub' exits 1 with the server's reason
// when the server refuses the publish (a reader sending a command, a
// commander sending to another edge, a site client publishing on the
// forwarder's subject), and 0 with "published" when it accepts it.
func TestPubWaitsForTheVerdict(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	tethertest.AddEdge(t, store, "plant-8", h)
	l := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "plant-7", h)), nil)
	tethertest.WaitLinked(t, l, 15*time.Second)
	reader, err := store.AddCloudUser("dash", "reader", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	commander, err := store.AddCloudUser("ops", "commander", []string{"plant-7"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	cloud := func(creds string) []string {
		return []string{"pub", "--server", h.ClientURL(), "--creds", creds, "--tlsca", store.CAFile()}
	}
	for _, tc := range []struct {
		name     string
		args     []string
		subject  string
		wantCode int
	}{
		{"reader sends a command", cloud(reader), "edges.plant-7.cmd.reboot", 1},
		{"commander to another edge", cloud(commander), "edges.plant-8.cmd.reboot", 1},
		{"commander to its edge", cloud(commander), "edges.plant-7.cmd.reboot", 0},
		{"site client on the forwarder's subject", []string{"pub", "--server", l.ClientURL()}, "tether.up.telemetry.temp", 1},
		{"site client telemetry", []string{"pub", "--server", l.ClientURL()}, "telemetry.temp", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append(tc.args, tc.subject, "x")...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.wantCode, stdout, stderr)
			}
			if tc.wantCode == 0 {
				if !strings.Contains(stdout, "published 1 bytes on "+tc.subject) {
					t.Fatalf("stdout %q, want the publish confirmed", stdout)
				}
				return
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing: the publish was refused", stdout)
			}
			if want := `Permissions Violation for Publish to "` + tc.subject + `"`; !strings.Contains(stderr, want) {
				t.Errorf("stderr %q, want the server's reason %q", stderr, want)
			}
			if n := strings.Count(stderr, "Permissions Violation"); n != 1 {
				t.Errorf("stderr %q tells the refusal %d times, want once", stderr, n)
			}
		})
	}
}

// TestSubRefusedAtOnce: 'tether sub' on a subject the user may not
// subscribe to exits 1 with the server's reason, once, instead of
// listening to nothing until interrupted.
func TestSubRefusedAtOnce(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	commander, err := store.AddCloudUser("ops", "commander", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	subject := "edges.*.telemetry.>"
	code, stdout, stderr := runCLI(t, "sub", "--server", h.ClientURL(), "--creds", commander, "--tlsca", store.CAFile(), subject)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, stdout, stderr)
	}
	if want := `tether: subscribe ` + subject + `: refused by the server`; !strings.Contains(stderr, want) {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	if n := strings.Count(stderr, `Permissions Violation for Subscription to "`+subject+`"`); n != 1 {
		t.Errorf("stderr %q gives the server's reason %d times, want once", stderr, n)
	}
	if strings.Contains(stderr, "listening on") {
		t.Errorf("stderr %q says it listens on a refused subject", stderr)
	}
}

// TestPubSubRefuseOpenCreds: pub and sub refuse a creds file that group or
// others may read, as 'tether leaf' refuses such a bundle.
func TestPubSubRefuseOpenCreds(t *testing.T) {
	store := tethertest.NewStore(t)
	open := filepath.Join(t.TempDir(), "cloud.creds")
	data, err := os.ReadFile(store.CloudCredsFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(open, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"pub", "--server", "tls://127.0.0.1:1", "--creds", open, "a.b", "x"},
		{"sub", "--server", "tls://127.0.0.1:1", "--creds", open, "a.b"},
	} {
		code, _, stderr := runCLI(t, args...)
		if code != 1 || !strings.Contains(stderr, "has mode 0644, want 0600 (chmod 600 "+open+")") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and the creds file's mode refused", args[0], code, stderr)
		}
	}
}

// TestSvcLsRefusedAtOnce: 'tether svc ls' as a user whose role has no
// services grant (a reader) fails at once with the server's refusal, not
// after the request's 10 s timeout.
func TestSvcLsRefusedAtOnce(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	reader, err := store.AddCloudUser("dash", "reader", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, stdout, stderr := runCLI(t, "svc", "ls", "--server", h.ClientURL(), "--creds", reader, "--tlsca", store.CAFile())
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("refusal took %s, want at once", took)
	}
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, stdout, stderr)
	}
	if want := `refused by the server (this user may not ask tether.svc.ls)`; !strings.Contains(stderr, want) {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

// syncBuffer is a bytes.Buffer a running command writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSubSkipsBatchMarker: the cloud's live view of an edge's burst shows
// the edge's messages only. The forwarder's end-of-batch marker (an empty
// message on the same subject, never stored) used to show as an empty
// message after the burst, and counted for --count.
func TestSubSkipsBatchMarker(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	l := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "plant-7", h)), nil)
	tethertest.WaitLinked(t, l, 15*time.Second)
	local := tethertest.Connect(t, l.ClientURL())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"sub", "--server", h.ClientURL(), "--creds", store.CloudCredsFile(), "--tlsca", store.CAFile(),
			"--count", "6", "edges.plant-7.telemetry.>"}, &out, &errb)
	}()
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(errb.String(), "listening on") {
			return fmt.Errorf("sub not listening yet: %q", errb.String())
		}
		return nil
	})
	publish := func(i int) {
		t.Helper()
		if err := local.Publish("telemetry.burst", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
		if err := local.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// A burst: the first message goes alone, the rest as a fast batch
	// ended by a marker. The sixth is sent once all five left the edge.
	for i := 1; i <= 5; i++ {
		publish(i)
	}
	tethertest.WaitFor(t, 15*time.Second, func() error {
		if b := l.Status().Buffer; b.Forwarded < 5 || b.BacklogMsgs > 0 {
			return fmt.Errorf("buffer: %d forwarded, %d waiting; want 5 and 0", b.Forwarded, b.BacklogMsgs)
		}
		return nil
	})
	publish(6)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("sub exit %d; stderr %q", code, errb.String())
		}
	case <-ctx.Done():
		t.Fatalf("sub did not end; stdout %q", out.String())
	}
	var want strings.Builder
	for i := 1; i <= 6; i++ {
		fmt.Fprintf(&want, "[edges.plant-7.telemetry.burst] m%d\n", i)
	}
	if got := out.String(); got != want.String() {
		t.Errorf("sub printed\n%s\nwant\n%s", got, want.String())
	}
}

// TestAuditRefusedAtOnce: 'tether audit' as a user who may not read
// telemetry (a commander) fails at once with the server's refusal, not
// after a 5 s timeout with "context deadline exceeded".
func TestAuditRefusedAtOnce(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	commander, err := store.AddCloudUser("ops", "commander", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, stdout, stderr := runCLI(t, "audit", "--server", h.ClientURL(), "--creds", commander, "--tlsca", store.CAFile())
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("refusal took %s, want at once", took)
	}
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, stdout, stderr)
	}
	if want := `read the audit trail: refused by the server (this user may not read the audit trail)`; !strings.Contains(stderr, want) {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}
