package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestBinaryDevPolicy follows the dev tour's policy step: 'tether dev'
// writes and applies a readable policy file; a user of the dashboard role
// is refused dev-b's telemetry; after editing the file and 'tether policy
// apply --dev', the same connection with the same creds reads it.
func TestBinaryDevPolicy(t *testing.T) {
	dir := t.TempDir()
	dev := startBinary(t, "tether dev", "dev", "--dir", dir, "--random-ports")
	var info devInfo
	binaryWaitFor(t, 30*time.Second, "dev.json", func() error {
		if dev.exited() {
			t.Fatalf("tether dev exited (%v) before writing dev.json", dev.err)
		}
		data, err := os.ReadFile(filepath.Join(dir, "dev.json"))
		if err != nil {
			return err
		}
		return json.Unmarshal(data, &info)
	})
	policyPath := filepath.Join(dir, "policy.yaml")
	src, err := os.ReadFile(policyPath)
	if err != nil || !strings.Contains(string(src), "telemetry: [dev-a]") {
		t.Fatalf("dev policy %s: %v\n%s", policyPath, err, src)
	}
	if out := string(runBinary(t, "policy", "history", "--dir", filepath.Join(dir, "store"))); !strings.Contains(out, "policy.yaml") {
		t.Fatalf("dev policy not applied at start:\n%s", out)
	}
	runBinary(t, "user", "add", "dash", "--role", "dashboard", "--dir", filepath.Join(dir, "store"))
	var violations []string
	errs := make(chan string, 16)
	dash := binaryConnect(t, info.Hub.ClientURL, append(cloudUserOptions(t, filepath.Join(dir, "store", "users", "dash.creds")),
		nats.RootCAs(info.Hub.CA), nats.ReconnectWait(50*time.Millisecond), nats.MaxReconnects(-1),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err.Error():
			default:
			}
		}))...)
	cloud := binaryConnect(t, info.Hub.ClientURL, nats.UserCredentials(info.Hub.Creds), nats.RootCAs(info.Hub.CA))
	sub, err := dash.SubscribeSync("edges.dev-b.telemetry.>")
	if err != nil {
		t.Fatal(err)
	}
	binaryWaitFor(t, 10*time.Second, "the dashboard refused dev-b", func() error {
		select {
		case e := <-errs:
			violations = append(violations, e)
		default:
		}
		for _, v := range violations {
			if strings.Contains(v, `Permissions Violation for Subscription to "edges.dev-b.telemetry.>"`) {
				return nil
			}
		}
		return fmt.Errorf("no violation yet: %v", violations)
	})

	edited := strings.Replace(string(src), "telemetry: [dev-a]", "telemetry: [dev-a, dev-b]", 1)
	if err := os.WriteFile(policyPath, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	out := string(runBinary(t, "policy", "apply", policyPath, "--dev", "--dev-dir", dir))
	if !strings.Contains(out, "may now receive live telemetry of edge dev-b") || !strings.Contains(out, "applied: every hub took") {
		t.Fatalf("apply:\n%s", out)
	}
	binaryWaitFor(t, 15*time.Second, "the dashboard reads dev-b", func() error {
		_ = cloud.Publish("edges.dev-b.telemetry.t", []byte("1"))
		_, err := sub.NextMsg(200 * time.Millisecond)
		return err
	})
}
