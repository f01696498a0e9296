package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

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

// TestServiceCallOfflineWhenInterestGoes: a call the hubs forwarded while
// the edge's interest was still seen (here a subscriber in SVC on hub-2
// stands for a link that just closed: it takes the call and drops it, as
// a hub does with a routed request whose interest is gone) fails as
// offline within a second once nothing in the cluster has interest any
// more; while the interest stays (a linked, slow edge), it waits.
func TestServiceCallOfflineWhenInterestGoes(t *testing.T) {
	store := tethertest.NewStore(t)
	hubs := tethertest.RunCluster(t, store, 3)
	tethertest.AddEdge(t, store, "plant-7", hubs...)
	stale := tethertest.Connect(t, hubs[1].ClientURL(), nats.UserCredentials(store.ServiceCredsFile()), nats.RootCAs(store.CAFile()))
	held, err := stale.SubscribeSync(contract.ServiceRequestAll("plant-7"))
	if err != nil {
		t.Fatal(err)
	}
	if err := stale.Flush(); err != nil {
		t.Fatal(err)
	}
	cloud := tethertest.ConnectCloud(t, store, hubs[0])
	subject := contract.CloudServiceSubject("plant-7", "echo", "echo")
	// Until hub-1 sees the interest the call fails as offline at once;
	// then the router forwards it to hub-2, where it is held.
	inboxes := map[string]*nats.Subscription{}
	var fwd *nats.Msg
	attempt := 0
	tethertest.WaitFor(t, 10*time.Second, func() error {
		attempt++
		inbox, err := cloud.SubscribeSync(cloud.NewRespInbox())
		if err != nil {
			return err
		}
		inboxes[fmt.Sprint(attempt)] = inbox
		if err := cloud.PublishRequest(subject, inbox.Subject, []byte(fmt.Sprint(attempt))); err != nil {
			return err
		}
		fwd, err = held.NextMsg(300 * time.Millisecond)
		return err
	})
	inbox := inboxes[string(fwd.Data)]
	if inbox == nil {
		t.Fatalf("forwarded call %q: not one of the %d sent", fwd.Data, attempt)
	}
	// A second is several of the router's probes (hub/services.go).
	if m, err := inbox.NextMsg(time.Second); err == nil {
		t.Fatalf("call answered %q (%s) while its edge still has interest: want it to wait", m.Data, m.Header.Get(contract.HeaderServiceError))
	}
	gone := time.Now()
	if err := held.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := stale.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := inbox.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("call held while the edge's interest went: %v after %s, want offline within 1s", err, time.Since(gone))
	}
	took := time.Since(gone)
	if code := m.Header.Get(contract.HeaderServiceErrorCode); code != fmt.Sprint(contract.CodeEdgeOffline) || took > time.Second {
		t.Fatalf("got code %q (%q) %s after the interest went, want %d within 1s", code, m.Header.Get(contract.HeaderServiceError), took, contract.CodeEdgeOffline)
	}
	t.Logf("offline answer %s after the interest went", took)
}
