package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runBinaryStatus runs tether and returns its stdout, stderr and exit code.
func runBinaryStatus(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tetherBinary(t), args...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("tether %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), 0
}

// TestBinaryDevServices: the dev tour's services part, with the real
// binary: discovery shows the sample services on both edges, the dev cloud
// user calls one, the narrower viewer is refused at once (by the hub: the
// dev policy grants it sensor.read only) and allowed its sensor, the audit
// trail has the calls that reached the edges, and the status views count the
// services.
func TestBinaryDevServices(t *testing.T) {
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
	devFlags := []string{"--dev", "--dev-dir", dir}
	run := func(args ...string) (string, string, int) {
		return runBinaryStatus(t, append(args, devFlags...)...)
	}
	binaryWaitFor(t, 20*time.Second, "4 services online in 'svc ls'", func() error {
		out, errOut, code := run("svc", "ls", "--json")
		var rows []struct {
			Edge   string `json:"edge"`
			Name   string `json:"name"`
			Online bool   `json:"online"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &rows) != nil {
			return fmt.Errorf("svc ls: exit %d: %s %s", code, out, errOut)
		}
		var got []string
		for _, r := range rows {
			if r.Online {
				got = append(got, r.Edge+"/"+r.Name)
			}
		}
		if fmt.Sprint(got) != "[dev-a/echo dev-a/sensor dev-b/echo dev-b/sensor]" {
			return fmt.Errorf("online services %v", got)
		}
		return nil
	})
	if out, errOut, code := run("svc", "call", "dev-a/echo.echo", "hello"); code != 0 || out != "hello\n" {
		t.Errorf("svc call dev-a/echo.echo: exit %d, %q %q", code, out, errOut)
	}
	start := time.Now()
	out, errOut, code := run("svc", "call", "--as", "viewer", "dev-a/echo.echo", "hello")
	if code != 1 || !strings.Contains(errOut, "not allowed") || !strings.Contains(errOut, "code 403") ||
		!strings.Contains(errOut, `Permissions Violation for Publish to "edges.dev-a.svc.echo.echo"`) || time.Since(start) > 10*time.Second {
		t.Errorf("viewer calls echo: exit %d, %q %q; want refused (403) with the server's reason", code, out, errOut)
	}
	if out, errOut, code := run("svc", "call", "--as", "viewer", "dev-b/sensor.read"); code != 0 || !strings.Contains(out, `"edge":"dev-b"`) {
		t.Errorf("viewer reads dev-b's sensor: exit %d, %q %q", code, out, errOut)
	}
	binaryWaitFor(t, 20*time.Second, "the two calls that reached an edge in 'tether audit' (the hub refused viewer's echo)", func() error {
		out, errOut, code := run("audit", "--json")
		var recs []struct {
			Caller struct {
				Name string `json:"name"`
			} `json:"caller"`
			Edge, Service, Endpoint, Status string
			Code                            int
		}
		if code != 0 || json.Unmarshal([]byte(out), &recs) != nil {
			return fmt.Errorf("audit: exit %d: %s %s", code, out, errOut)
		}
		var got []string
		for _, r := range recs {
			got = append(got, fmt.Sprintf("%s %s/%s.%s %s %d", r.Caller.Name, r.Edge, r.Service, r.Endpoint, r.Status, r.Code))
		}
		want := "[dev dev-a/echo.echo ok 0 viewer dev-b/sensor.read ok 0]"
		if fmt.Sprint(got) != want {
			return fmt.Errorf("audit %v, want %s", got, want)
		}
		return nil
	})
	out, _, _ = runBinaryStatus(t, "leaf", "status", "--url", info.edgeURL(t, "dev-a"))
	if !strings.Contains(out, "service echo 1.0.0") || !strings.Contains(out, "gateway (config") {
		t.Errorf("leaf status shows no gateway or services:\n%s", out)
	}
	binaryWaitFor(t, 20*time.Second, "2 services per edge in 'tether status'", func() error {
		out, _, _ := run("status", "--json")
		var fleet []struct {
			Edge     string `json:"edge"`
			Services int    `json:"services"`
		}
		if err := json.Unmarshal([]byte(out), &fleet); err != nil {
			return err
		}
		if fmt.Sprint(fleet) != "[{dev-a 2} {dev-b 2}]" {
			return fmt.Errorf("fleet %v", fleet)
		}
		return nil
	})
}
