package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestEdgePushAfterFailedAdd: an edge whose 'edge add --push' failed is in
// the store but unknown to the hubs. Its leaf, refused with "Authorization
// Violation", logs that the hubs may not know its account and how to push
// it; 'tether edge push' then lets it link.
func TestEdgePushAfterFailedAdd(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	bundle := t.TempDir() + "/plant-7.bundle"
	code, _, stderr := runCLI(t, "edge", "add", "plant-7", "--dir", store.Dir(), "--out", bundle, "--push", "tls://127.0.0.1:1")
	if code != 1 || !strings.Contains(stderr, "push it again with 'tether edge push plant-7") {
		t.Fatalf("edge add with an unreachable --push: exit %d, stderr %q; want 1 and how to push again", code, stderr)
	}
	bundle = tethertest.BundleFile(t, store, "plant-7", []string{h.LeafURL()}, nil)
	var logs tethertest.LogBuffer
	l := tethertest.RunLeaf(t, tethertest.LeafConfig(t, bundle), logs.Logger())
	const hint = "the hubs may not know this edge's account: push it with 'tether edge push plant-7'"
	tethertest.WaitFor(t, 15*time.Second, func() error {
		if !logs.Contains(hint) {
			return errors.New("no hint in the edge's log after its link was refused:\n" + logs.String())
		}
		return nil
	})
	if l.Link().Connected {
		t.Fatal("the edge linked although the hubs do not know its account")
	}

	code, stdout, stderr := runCLI(t, "edge", "push", "plant-7", "--dir", store.Dir(), "--hub", h.ClientURL())
	if code != 0 || !strings.Contains(stdout, "edge plant-7 pushed to "+h.ClientURL()) {
		t.Fatalf("edge push: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	tethertest.WaitLinked(t, l, 20*time.Second)
	if n := logs.Count(hint); n != 1 {
		t.Errorf("the hint was logged %d times, want once (at most once a minute)", n)
	}
}
