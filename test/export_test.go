package test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-fabric/tether/fleet"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestHubFromExport: a hub that only has the hub export of the store
// (no operator, account or system keys, no edges' creds, no CA key) runs
// the fabric: a bundle edge links and sends telemetry, and a device enrolls
// with a token (the registrar signs with the scoped leaf key in the
// export) once the export is refreshed after the edge was added.
func TestHubFromExport(t *testing.T) {
	store := tethertest.NewStore(t)
	dir := filepath.Join(t.TempDir(), "hub-store")
	if _, err := store.ExportHub(dir); err != nil {
		t.Fatal(err)
	}
	hc := tethertest.HubConfig(t, store, "hub-1")
	hc.Store = dir
	h := tethertest.RunHub(t, hc, nil)

	l := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "plant-8", h)), nil)
	tethertest.WaitLinked(t, l, 10*time.Second)
	cloud := tethertest.ConnectCloud(t, store, h)
	sub, _ := cloud.SubscribeSync("edges.plant-8.telemetry.>")
	cloud.Flush()
	if err := tethertest.Connect(t, l.ClientURL()).Publish("telemetry.temp", []byte("20")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("telemetry from an edge of the exported hub: %v", err)
	}

	tok := tethertest.EnrollToken(t, store, "plant-7", 0, h)
	if _, err := store.ExportHub(dir); err != nil {
		t.Fatal(err)
	}
	var log tethertest.LogBuffer
	c := enrollConfig(t)
	if _, err := enroll(t, c, tok, &log); err != nil {
		t.Fatalf("enroll through a hub with the export: %v\n%s", err, log.String())
	}
	l2 := tethertest.RunLeaf(t, c, nil)
	tethertest.WaitLinked(t, l2, 10*time.Second)

	// The registrar recorded the device's key in the export, not in the
	// operator's store; rotation still works, on the edge's own word
	// (signed with that key, over its own link).
	res, err := rotateEdge(t, store, h, "plant-7")
	if err != nil {
		t.Fatalf("rotate an edge enrolled through the export: %v", err)
	}
	if cur, _ := store.LeafUser("plant-7"); cur != res.User {
		t.Errorf("store's leaf user after rotation = %s, want %s", cur, res.User)
	}
}

// rotateEdge rotates edge's key over its live link through hub h, as
// 'tether edge rotate' does.
func rotateEdge(t *testing.T, store *accounts.Store, h *hub.Server, edge string) (*fleet.RotateResult, error) {
	t.Helper()
	sys, err := fleet.ConnectSystem(store, h.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return fleet.Rotate(ctx, store, h.ClientURL(), sys, edge)
}
