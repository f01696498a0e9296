package test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestFreshHubKeepsItsStreams starts hubs on empty data dirs and checks
// that the CLOUD streams they create at start are on disk once the hub is
// ready. nats-server removes an account's streams directory while it
// enables the account's JetStream if the directory did not exist, and
// streams created in that window lose their files (hub.prepareStreamsDir):
// they fail once they need a second block, with what they stored gone.
// The window is short. With one P the goroutine enabling JetStream yields
// inside it (a syscall) to the hub's setup client: before the fix, runs of
// this test failed 3 in 3 (within the first 1 to 6 starts) without the
// race detector and 1 in 4 with it; with the machine's 2 Ps 0 in 3.
func TestFreshHubKeepsItsStreams(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	store := tethertest.NewStore(t)
	cloud, err := store.Account(contract.CloudAccountName)
	if err != nil {
		t.Fatal(err)
	}
	const starts = 30
	for i := range starts {
		c := tethertest.HubConfig(t, store, "hub-1")
		h := tethertest.RunHub(t, c, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := h.WaitReady(ctx)
		cancel()
		if err != nil {
			t.Fatalf("start %d: %v", i+1, err)
		}
		streams := filepath.Join(c.DataDir, "jetstream", server.JetStreamStoreDir, cloud.Pub, "streams")
		for _, name := range []string{contract.TelemetryStream, contract.CommandsStream, contract.EdgeStatusStream} {
			if _, err := os.Stat(filepath.Join(streams, name, "meta.inf")); err != nil {
				t.Fatalf("start %d of a fresh hub: stream %s is not on disk after the hub is ready: %v", i+1, name, err)
			}
		}
		if err := h.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
