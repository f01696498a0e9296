package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/fleet"

	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestRevokeEdge: revoking an edge and pushing the change to a 3-hub
// cluster closes its live link within a second, every reconnect is refused
// and the edge's log says why; the store refuses it a new bundle.
func TestRevokeEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("3-hub cluster: skipped in -short")
	}
	store := tethertest.NewStore(t)
	hubs := tethertest.RunCluster(t, store, 3)
	var edgeLog tethertest.LogBuffer
	l := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "plant-7", hubs...)), edgeLog.Logger())
	tethertest.WaitLinked(t, l, 10*time.Second)

	if _, err := store.RevokeEdge("plant-7"); err != nil {
		t.Fatal(err)
	}
	sys, err := fleet.ConnectSystem(store, hubs[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	res, err := fleet.PushAccount(ctx, store, sys, contract.EdgeAccountName("plant-7"))
	if err != nil || len(res) != 3 {
		t.Fatalf("push revocation: %v %+v", err, res)
	}
	pushed := time.Since(start)
	tethertest.WaitFor(t, 5*time.Second, func() error {
		for _, h := range hubs {
			if n := h.NATS().NumLeafNodes(); n != 0 {
				return fmt.Errorf("hub %s still has %d leaf connection(s)", h.NATS().Name(), n)
			}
		}
		return nil
	})
	took := time.Since(start)
	t.Logf("revoke: pushed to 3 hubs in %s, edge disconnected %s after the push began", pushed, took)
	if took > time.Second {
		t.Errorf("revoke-to-disconnect took %s, want < 1s", took)
	}
	// Reconnects are refused, and the edge says why.
	waitLogs(t, 10*time.Second, map[string]*tethertest.LogBuffer{"edge": &edgeLog}, map[string]string{
		"edge": "Authorization Violation",
	})
	if l.Link().Connected {
		t.Fatalf("revoked edge linked again: %+v", l.Link())
	}
	if _, err := store.Bundle("plant-7"); err == nil {
		t.Error("store wrote a bundle for a revoked edge")
	}
}
