package test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/fleet"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/policy"
)

// TestServiceGatewayPush: an edge started without a gateway configuration
// exposes nothing; the operator pushes one over the edge's link and the
// call works at once; a configuration for another edge is refused; the
// edge keeps the pushed one across a restart.
func TestServiceGatewayPush(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	c := tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "plant-7", h))
	l := tethertest.RunLeaf(t, c, nil)
	tethertest.WaitLinked(t, l, 15*time.Second)
	startEcho(t, l.ClientURL())
	cloud := tethertest.ConnectCloud(t, store, h)
	subject := contract.CloudServiceSubject("plant-7", "echo", "echo")
	if _, code, _ := call(t, cloud, svcMsg(subject, "x")); code != contract.CodeNoService {
		t.Fatalf("before the push: code %d, want %d", code, contract.CodeNoService)
	}
	push := func(gw policy.Gateway) contract.GatewayPushReply {
		t.Helper()
		nc, err := fleet.ConnectControl(store, h.ClientURL(), "plant-7")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		data, _ := json.Marshal(gw)
		resp, err := nc.Request(contract.GatewayControlSubject, data, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r contract.GatewayPushReply
		if err := json.Unmarshal(resp.Data, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := push(policy.Gateway{Edge: "plant-8", Expose: []string{"echo"}}); r.Applied || r.Error == "" {
		t.Errorf("push for another edge: %+v, want refused", r)
	}
	r := push(policy.Gateway{Edge: "plant-7", Expose: []string{"echo"}, Grants: []policy.ServiceGrant{
		{Caller: policy.Principal{Kind: policy.PrincipalUser, Name: "cloud"}, Service: "echo", Endpoint: "*"},
	}})
	if !r.Applied || r.Grants != 1 {
		t.Fatalf("push: %+v", r)
	}
	if got, code, _ := call(t, cloud, svcMsg(subject, "pushed")); code != 0 || got != "pushed" {
		t.Fatalf("after the push: %q code %d", got, code)
	}
	// Restarted on the same data dir, the edge still has it.
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	l = tethertest.RunLeaf(t, c, nil)
	tethertest.WaitLinked(t, l, 15*time.Second)
	startEcho(t, l.ClientURL())
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if _, code, _ := call(t, cloud, svcMsg(subject, "again")); code != 0 {
			return fmt.Errorf("call after the restart: code %d", code)
		}
		return nil
	})
}

// TestGatewayDeliveryOnlyToLinkedEdges: delivering gateway configurations
// connects only for the edges the hubs record as linked (a push is a
// connection as the edge's control user: for thousands of edges that are
// not linked it took minutes to learn that); the others are reported
// pending and take theirs from the cloud bucket when they link.
func TestGatewayDeliveryOnlyToLinkedEdges(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	l := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "plant-0", h)), nil)
	tethertest.WaitLinked(t, l, 15*time.Second)
	gws := []policy.Gateway{{Edge: "plant-0", Expose: []string{"echo"}}}
	for i := 1; i <= 20; i++ {
		name := fmt.Sprintf("plant-%d", i)
		if _, err := store.AddEdgeForEnrollment(name); err != nil {
			t.Fatal(err)
		}
		gws = append(gws, policy.Gateway{Edge: name, Expose: []string{"echo"}})
	}
	cloud := tethertest.ConnectCloud(t, store, h)
	// The hubs record the link within a second of its coming up.
	js, err := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := store.Account(contract.EdgeAccountName("plant-0"))
	if err != nil {
		t.Fatal(err)
	}
	tethertest.WaitFor(t, 5*time.Second, func() error {
		kv, err := js.KeyValue(context.Background(), contract.LinksBucket)
		if err == nil {
			_, err = kv.Get(context.Background(), acc.Pub)
		}
		return err
	})
	total := func() uint64 {
		v, err := h.NATS().Varz(nil)
		if err != nil {
			t.Fatal(err)
		}
		return v.TotalConnections
	}
	before := total()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := fleet.DeliverGateways(ctx, store, cloud, h.ClientURL(), gws, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := total() - before; n > 1 {
		t.Errorf("delivering to 1 linked and 20 unlinked edges opened %d connections, want 1", n)
	}
	for _, r := range res {
		if r.Edge == "plant-0" && !r.Applied || r.Edge != "plant-0" && !r.Pending {
			t.Errorf("%+v: want plant-0 applied, the others pending", r)
		}
	}
}
