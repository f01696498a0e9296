package test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

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
