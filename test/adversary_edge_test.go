package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// TestAdversaryEdgeCannotSuppressAnother: edge a, holding only its own
// leaf creds, sends messages carrying every message id edge b's forwarder
// would use next (b's origin is no secret). The cloud's duplicate window
// must not take b's real messages for duplicates of a's.
func TestAdversaryEdgeCannotSuppressAnother(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	a := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "a", h)), nil)
	b := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "b", h)), nil)
	tethertest.WaitLinked(t, a, 10*time.Second)
	tethertest.WaitLinked(t, b, 10*time.Second)
	bSite := tethertest.Connect(t, b.ClientURL())
	origin := siteOrigin(t, bSite)

	// The hostile edge speaks on its own plumbing, as a modified binary
	// holding a's creds would.
	evil := a.InternalConn()
	const n = 20
	tethertest.WaitFor(t, 10*time.Second, func() error {
		_, err := evil.Request(contract.UplinkPrefix+"telemetry.probe", []byte("probe"), time.Second)
		return err
	})
	forged := 0
	for seq := 1; seq <= n+5; seq++ {
		for _, id := range []string{fmt.Sprintf("b:%s:%d", origin, seq), fmt.Sprintf("%s:%d", origin, seq)} {
			m := &nats.Msg{Subject: contract.UplinkPrefix + "telemetry.forged", Header: nats.Header{}, Data: []byte("forged")}
			m.Header.Set(nats.MsgIdHdr, id)
			m.Header.Set(contract.HeaderEdge, "b")
			m.Header.Set(contract.HeaderOrigin, origin)
			m.Header.Set(contract.HeaderSeq, fmt.Sprint(seq))
			if _, err := evil.RequestMsg(m, 2*time.Second); err == nil {
				forged++
			}
		}
	}
	t.Logf("edge a stored %d forged messages with b's ids", forged)

	bjs, _ := jetstream.New(bSite)
	publish(t, bjs, "b-real", 0, n)
	cloud := tethertest.ConnectCloud(t, store, h)
	c := newChecker()
	drainCloud(t, cloud, "b", c, n, 20*time.Second)
	if err := c.verify(map[string]int{"b-real": n}); err != nil {
		t.Fatal(err)
	}
}

// TestAdversaryDataDirInUse: a second edge process on a data dir in use is
// refused with an error that names the dir and the other process; an edge
// refuses a data dir written by another edge identity.
func TestAdversaryDataDirInUse(t *testing.T) {
	store := tethertest.NewStore(t)
	hc := tethertest.HubConfig(t, store, "hub-1")
	h := tethertest.RunHub(t, hc, nil)
	// A second hub on the first one's data dir.
	hc2 := tethertest.HubConfig(t, store, "hub-2")
	hc2.DataDir = hc.DataDir
	h2, err := hub.New(hc2, nil)
	if err != nil {
		t.Fatal(err)
	}
	hctx, hcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer hcancel()
	if err := h2.Start(hctx); err == nil {
		_ = h2.Shutdown(hctx)
		t.Error("a second hub started on a data dir in use")
	} else if !strings.Contains(err.Error(), hc.DataDir) || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "pid") {
		t.Errorf("second hub on a dir in use: %v; want an error naming %s, saying it is in use, with the holder's pid", err, hc.DataDir)
	}
	ca := tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "a", h))
	first := tethertest.RunLeaf(t, ca, nil)

	cb := tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "b", h))
	cb.DataDir = ca.DataDir
	second, err := leaf.New(cb, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = second.Start(ctx)
	if err == nil {
		_ = second.Shutdown(ctx)
		t.Fatal("a second edge started on a data dir in use")
	}
	if !strings.Contains(err.Error(), ca.DataDir) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second edge on a dir in use: %v; want an error naming %s and saying it is in use", err, ca.DataDir)
	}

	// The first stops; another edge identity still may not take its dir.
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	other, _ := leaf.New(cb, nil)
	err = other.Start(ctx)
	if err == nil {
		_ = other.Shutdown(ctx)
		t.Fatal("edge b started on edge a's data dir")
	}
	if !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), ca.DataDir) {
		t.Errorf("edge b on a's data dir: %v; want an error naming edge \"a\" and the dir", err)
	}
	// The rightful edge starts again on it.
	again := tethertest.RunLeaf(t, ca, nil)
	_ = again.Shutdown(ctx)
}
