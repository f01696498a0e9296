package test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-fabric/tether/fleet"
	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestRotateEdge: on a 3-hub cluster, rotating an edge's credentials while
// it publishes gives it a key made on the device, over its live link; it
// comes back with the new key, nothing published is lost or duplicated,
// the old creds are refused, the rewritten bundle is 0600 and the store
// keeps no seed of the edge.
func TestRotateEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("3-hub cluster: skipped in -short")
	}
	store := tethertest.NewStore(t)
	hubs := tethertest.RunCluster(t, store, 3)
	bundle := tethertest.WriteBundle(t, store, "plant-7", hubs...)
	oldCreds := readBundle(t, bundle).Creds
	var edgeLog tethertest.LogBuffer
	cfg := tethertest.LeafConfig(t, bundle)
	l := tethertest.RunLeaf(t, cfg, edgeLog.Logger())
	tethertest.WaitLinked(t, l, 10*time.Second)
	oldUser, err := store.LeafUser("plant-7")
	if err != nil {
		t.Fatal(err)
	}

	js, err := jetstream.New(tethertest.Connect(t, l.ClientURL()), jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		t.Fatal(err)
	}
	const total = 3000
	var wg sync.WaitGroup
	wg.Add(1)
	// The publisher reports to t: it must be done before the test is, even
	// when a check below fails first.
	defer wg.Wait()
	go func() { // publishes before, during and after the rotation
		defer wg.Done()
		publish(t, js, "rot", 0, total)
	}()

	sys, err := fleet.ConnectSystem(store, hubs[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	res, err := fleet.Rotate(ctx, store, hubs[1].ClientURL(), sys, "plant-7")
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	t.Logf("rotate: %s in all, edge back with its new key %s after the push", time.Since(start).Round(time.Millisecond), res.Relinked.Round(time.Millisecond))
	if res.User == oldUser || res.Previous != oldUser || len(res.Pushed) != 3 {
		t.Fatalf("rotate result %+v, previous user %s", res, oldUser)
	}
	wg.Wait()

	// Everything published arrives once, in order.
	c := newChecker()
	drainCloud(t, tethertest.ConnectCloud(t, store, hubs[0]), "plant-7", c, total, 30*time.Second)
	if err := c.verify(map[string]int{"rot": total}); err != nil {
		t.Fatal(err)
	}

	// The bundle on the edge holds the new key, 0600; the store has none.
	b := readBundle(t, bundle)
	ujwt, _ := jwt.ParseDecoratedJWT([]byte(b.Creds))
	uc, _ := jwt.DecodeUserClaims(ujwt)
	if uc == nil || uc.Subject != res.User {
		t.Fatalf("bundle's user = %v, want %s", uc, res.User)
	}
	if fi, _ := os.Stat(bundle); fi.Mode().Perm() != 0o600 {
		t.Errorf("rewritten bundle mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(store.Dir(), "edges", "plant-7", "leaf.creds")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("store still holds the edge's creds after rotation: %v", err)
	}
	if cur, _ := store.LeafUser("plant-7"); cur != res.User {
		t.Errorf("store's current leaf user = %s, want %s", cur, res.User)
	}
	if !edgeLog.Contains("credentials rotated") {
		t.Errorf("edge log does not mention the rotation:\n%s", edgeLog.String())
	}

	// The old creds are refused: an edge started with them never links and
	// logs why.
	oldBundle := readBundle(t, bundle)
	oldBundle.Creds = oldCreds
	oldPath := filepath.Join(t.TempDir(), "old.bundle")
	if err := sitefile.WriteBundle(oldPath, oldBundle); err != nil {
		t.Fatal(err)
	}
	var oldLog tethertest.LogBuffer
	tethertest.RunLeaf(t, tethertest.LeafConfig(t, oldPath), oldLog.Logger())
	waitLogs(t, 10*time.Second, map[string]*tethertest.LogBuffer{"old": &oldLog}, map[string]string{"old": "Authorization Violation"})

	// Restarted from its rewritten bundle, the edge links with the new key.
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	l2 := tethertest.RunLeaf(t, cfg, nil)
	tethertest.WaitLinked(t, l2, 10*time.Second)
}

// TestRotateOfflineEdge: rotating an edge that is not linked fails with a
// clear error and changes nothing.
func TestRotateOfflineEdge(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	before, _ := store.Edge("plant-7")
	user, _ := store.LeafUser("plant-7")
	sys, err := fleet.ConnectSystem(store, h.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	_, err = fleet.Rotate(context.Background(), store, h.ClientURL(), sys, "plant-7")
	if !errors.Is(err, fleet.ErrEdgeOffline) || !strings.Contains(err.Error(), "plant-7") {
		t.Fatalf("rotate offline edge = %v, want ErrEdgeOffline naming plant-7", err)
	}
	after, _ := store.Edge("plant-7")
	if u, _ := store.LeafUser("plant-7"); after.Account.JWT != before.Account.JWT || u != user {
		t.Error("a failed rotation changed the account or the current user")
	}
}

func readBundle(t *testing.T, path string) *sitefile.Bundle {
	t.Helper()
	b, err := sitefile.LoadBundle(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRemoveEdge: 'edge rm' on a 3-hub cluster closes the edge's link and
// refuses it from then on, deletes its cloud data, command consumer and
// account on every hub's resolver, and removes it from the store; the name
// can be used again for a fresh edge.
func TestRemoveEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("3-hub cluster: skipped in -short")
	}
	store := tethertest.NewStore(t)
	hubs := tethertest.RunCluster(t, store, 3)
	var edgeLog tethertest.LogBuffer
	l := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "plant-7", hubs...)), edgeLog.Logger())
	tethertest.WaitLinked(t, l, 10*time.Second)
	js, err := jetstream.New(tethertest.Connect(t, l.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, js, "rm", 0, 100)
	cloud := tethertest.ConnectCloud(t, store, hubs[0])
	drainCloud(t, cloud, "plant-7", newChecker(), 100, 20*time.Second)
	e, _ := store.Edge("plant-7")

	sys, err := fleet.ConnectSystem(store, hubs[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := fleet.Remove(ctx, store, sys, cloud, "plant-7", false)
	if err != nil {
		t.Fatalf("remove: %v (%+v)", err, res)
	}
	if res.Data == nil || res.Data.TelemetryMsgs != 100 || !res.Data.Consumer || len(res.Deleted) != 3 {
		t.Fatalf("remove result %+v data %+v, want 100 telemetry messages and the consumer deleted on 3 hubs", res, res.Data)
	}
	for _, h := range hubs {
		if n := h.NATS().NumLeafNodes(); n != 0 {
			t.Errorf("hub %s still has %d leaf connection(s)", h.NATS().Name(), n)
		}
		if _, err := h.NATS().AccountResolver().Fetch(e.Account.Pub); err == nil {
			t.Errorf("hub %s's resolver still has the account of the removed edge", h.NATS().Name())
		}
	}
	cjs, _ := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	st, err := cjs.Stream(ctx, contract.TelemetryStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("edges.plant-7.>"))
	if err != nil || len(info.State.Subjects) != 0 {
		t.Errorf("cloud still holds the removed edge's telemetry: %v %v", info.State.Subjects, err)
	}
	if _, err := cjs.Consumer(ctx, contract.CommandsStream, contract.CommandConsumer("plant-7")); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("command consumer of the removed edge: %v, want not found", err)
	}
	if _, err := store.Edge("plant-7"); !errors.Is(err, accounts.ErrNoEdge) {
		t.Errorf("store still knows the removed edge: %v", err)
	}
	waitLogs(t, 10*time.Second, map[string]*tethertest.LogBuffer{"edge": &edgeLog}, map[string]string{"edge": "Authorization Violation"})
	if l.Link().Connected {
		t.Fatal("removed edge linked again")
	}

	// The name is free again: a new edge of that name links and is a
	// different account.
	l2 := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "plant-7", hubs...)), nil)
	tethertest.WaitLinked(t, l2, 10*time.Second)
	if e2, _ := store.Edge("plant-7"); e2 == nil || e2.Account.Pub == e.Account.Pub {
		t.Errorf("re-added edge reuses the removed account %s", e.Account.Pub)
	}
}
