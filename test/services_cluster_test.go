package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/policy"
)

// TestServiceCallAcrossCluster: the edge is linked to hub-2, the caller to
// hub-1, and every hub's router takes calls (one queue group): each call
// is answered once, through whichever router took it; when the edge stops,
// a call fails at once as offline.
func TestServiceCallAcrossCluster(t *testing.T) {
	store := tethertest.NewStore(t)
	hubs := tethertest.RunCluster(t, store, 3)
	tethertest.AddEdge(t, store, "plant-7", hubs...)
	c := tethertest.LeafConfig(t, tethertest.BundleFile(t, store, "plant-7", []string{hubs[1].LeafURL()}, nil))
	c.Gateway = writeGateway(t, policy.Gateway{Edge: "plant-7", Expose: []string{"echo"}, Grants: []policy.ServiceGrant{
		{Caller: policy.Principal{Kind: policy.PrincipalUser, Name: "cloud"}, Service: "echo", Endpoint: "*"},
	}})
	l := tethertest.RunLeaf(t, c, nil)
	tethertest.WaitLinked(t, l, 15*time.Second)
	startEcho(t, l.ClientURL())
	cloud := tethertest.ConnectCloud(t, store, hubs[0])
	subject := contract.CloudServiceSubject("plant-7", "echo", "echo")
	// Interest in the edge's slice reaches hub-1 through the routes.
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if _, code, _ := call(t, cloud, svcMsg(subject, "x")); code != 0 {
			return fmt.Errorf("code %d", code)
		}
		return nil
	})
	sub, err := cloud.SubscribeSync(cloud.NewRespInbox())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if err := cloud.PublishRequest(subject, sub.Subject, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	for range 30 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("answers: %v after %d", err, len(got))
		}
		got[string(m.Data)]++
	}
	if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("an extra answer %q: a call was answered twice", m.Data)
	}
	if len(got) != 30 {
		t.Fatalf("answers %v, want 30 distinct", got)
	}
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	tethertest.WaitFor(t, 10*time.Second, func() error {
		text, code, took := call(t, cloud, svcMsg(subject, "x"))
		if code != contract.CodeEdgeOffline || took > time.Second {
			return fmt.Errorf("offline edge: code %d (%q) after %s", code, text, took)
		}
		return nil
	})
}
