package test

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/policy"
)

// TestServiceInteropRawProtocol: a service written without any NATS client
// library (Python speaking the NATS text protocol over a socket) answers a
// cloud caller through the fabric, as a plain responder on
// svc.<service>.<endpoint>.
func TestServiceInteropRawProtocol(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	f := startSvcFabric(t, policy.Gateway{Edge: "plant-7", Expose: []string{"weather"}, Grants: []policy.ServiceGrant{
		{Caller: policy.Principal{Kind: policy.PrincipalUser, Name: "ops"}, Service: "weather", Endpoint: "*", Audit: true},
	}})
	host, port, err := net.SplitHostPort(strings.TrimPrefix(f.edge.ClientURL(), "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, filepath.Join("testdata", "raw_responder.py"), host, port, "svc.weather.now", "python")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("raw responder: %q", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("raw responder not ready after 20s")
	}
	got, code, _ := call(t, f.ops, svcMsg(contract.CloudServiceSubject("plant-7", "weather", "now"), "sunny?"))
	if code != 0 || got != "python: sunny?" {
		t.Fatalf("weather.now through the fabric: %q code %d, want %q", got, code, "python: sunny?")
	}
}
