package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/fleet"
	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/cloudjs"
	"github.com/tether-fabric/tether/internal/securefile"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/policy"
)

// policyV1 and policyV2 differ in every kind of rule: the dashboard reads
// ber-1 then ber-2, the maintenance team commands ber-1 then ber-2, ber-1
// calls the billing service then ber-2 does, ber-1 and ber-2 are not linked
// (only ber-1 allows it) then are, the quality role may call ber-1's vision
// service with one limit then another.
const policyV1 = `version: 1
edges:
  ber-1: {labels: {site: berlin}, calls: [billing], links: [ber-2], expose: [vision]}
  ber-2: {labels: {site: berlin}, expose: [echo]}
roles:
  dash: {telemetry: [ber-1]}
  maintenance:
    commands: [{to: [ber-1], subjects: [reboot]}]
  billing: {serve: [billing]}
  quality:
    services: [{service: vision, on: [ber-1], rate: 5/s, audit: true}]
`

const policyV2 = `version: 1
edges:
  ber-1: {labels: {site: berlin}, links: [ber-2], expose: [vision]}
  ber-2: {labels: {site: berlin}, calls: [billing], links: [ber-1], expose: [echo]}
roles:
  dash: {telemetry: [ber-2]}
  maintenance:
    commands: [{to: [ber-2], subjects: [reboot]}]
  billing: {serve: [billing]}
  quality:
    services: [{service: vision, on: [ber-1], rate: 1/s, max_in_flight: 2}]
`

// applyPolicy plans and applies src over the store, pushes every changed
// account to the hub and delivers the edges' gateway configurations, as
// 'tether policy apply --push' does.
func applyPolicy(t *testing.T, store *accounts.Store, h *hub.Server, src string) *accounts.PolicyPlan {
	t.Helper()
	plan, err := store.PlanPolicy("policy.yaml", []byte(src))
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	v, push, err := store.ApplyPolicy(plan, 0)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	// The gateways first, as 'tether policy apply' does.
	cloud := tethertest.ConnectCloud(t, store, h)
	defer cloud.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := fleet.DeliverGateways(ctx, store, cloud, h.ClientURL(), plan.Output.Gateways, v.Version); err != nil {
		t.Fatalf("deliver gateways: %v", err)
	}
	if _, err := fleet.ApplyGroupStreams(ctx, cloud, plan.Output.Groups); err != nil {
		t.Fatalf("group streams: %v", err)
	}
	for _, acc := range push {
		tethertest.PushAccount(t, store, acc.Name, h)
	}
	if err := store.MarkPolicyPushed(v.Version); err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestPolicyStoreOnlyGateways: a policy applied with --store-only (the
// store written, nothing pushed) reaches the edges' gateway configurations
// once a hub starts from that store: the hub puts them into the cloud
// bucket the edges fetch from at link-up. An older policy version than
// the bucket holds (a hub started from a stale copy of the store) is not
// written over it.
func TestPolicyStoreOnlyGateways(t *testing.T) {
	store := tethertest.NewStore(t)
	tethertest.AddEdge(t, store, "ber-1")
	tethertest.AddEdge(t, store, "ber-2")
	plan, err := store.PlanPolicy("policy.yaml", []byte(policyV1))
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	v, _, err := store.ApplyPolicy(plan, 0)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	cloud := tethertest.ConnectCloud(t, store, h)
	js, err := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, contract.GatewayBucket)
	if err != nil {
		t.Fatalf("bucket %s: %v", contract.GatewayBucket, err)
	}
	for _, gw := range plan.Output.Gateways {
		want, _ := json.Marshal(gw)
		got, err := kv.Get(ctx, gw.Edge)
		if err != nil {
			t.Fatalf("edge %s: the hub did not load the store's gateway configuration (policy version %d): %v", gw.Edge, v.Version, err)
		}
		if string(got.Value()) != string(want) {
			t.Errorf("edge %s: bucket holds %s, want %s", gw.Edge, got.Value(), want)
		}
	}
	// A later apply (version 2, through the bucket) is not undone by a
	// delivery of version 1.
	plan2, err := store.PlanPolicy("policy.yaml", []byte(policyV2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fleet.DeliverGateways(ctx, store, cloud, h.ClientURL(), plan2.Output.Gateways, v.Version+1); err != nil {
		t.Fatalf("deliver version %d: %v", v.Version+1, err)
	}
	if _, err := fleet.DeliverGateways(ctx, store, cloud, h.ClientURL(), plan.Output.Gateways, v.Version); !errors.Is(err, cloudjs.ErrStaleGateways) {
		t.Errorf("delivering version %d over %d: got %v, want %v", v.Version, v.Version+1, err, cloudjs.ErrStaleGateways)
	}
	for _, gw := range plan2.Output.Gateways {
		want, _ := json.Marshal(gw)
		if got, err := kv.Get(ctx, gw.Edge); err != nil || string(got.Value()) != string(want) {
			t.Errorf("edge %s after the stale delivery: bucket holds %v (%v), want version %d's %s", gw.Edge, got, err, v.Version+1, want)
		}
	}
}

// policyClient is a connection that records the server's asynchronous
// errors (permissions violations) and reconnects at once.
type policyClient struct {
	nc   *nats.Conn
	mu   sync.Mutex
	errs []string
}

func connectPolicyClient(t *testing.T, url string, opts ...nats.Option) *policyClient {
	t.Helper()
	c := &policyClient{}
	c.nc = tethertest.Connect(t, url, append(opts,
		nats.ReconnectWait(50*time.Millisecond), nats.MaxReconnects(-1),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err.Error())
			c.mu.Unlock()
		}))...)
	return c
}

// refused waits for the server's permissions violation for kind
// ("Publish" or "Subscription") on a subject starting with subject and
// containing every one of also.
func (c *policyClient) refused(t *testing.T, kind, subject string, also ...string) {
	t.Helper()
	tethertest.WaitFor(t, 5*time.Second, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
	next:
		for _, e := range c.errs {
			if !strings.Contains(e, fmt.Sprintf(`Permissions Violation for %s to "%s`, kind, subject)) {
				continue
			}
			for _, a := range also {
				if !strings.Contains(e, a) {
					continue next
				}
			}
			return nil
		}
		return fmt.Errorf("no permissions violation for %s to %s; got %v", kind, subject, c.errs)
	})
}

// TestPolicyLive: for every kind of rule, a principal with the grant
// succeeds and one without is refused, before and after an apply changes
// the rule, with no process restarted and no creds reissued: the users are
// signed by their role's scoped key, so the re-signed CLOUD account changes
// what they may do (the server closes their connections once and they
// reconnect with the same creds under the new template); the edges' leaf
// scopes likewise.
func TestPolicyLive(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	l1 := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "ber-1", h)), nil)
	l2 := tethertest.RunLeaf(t, tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "ber-2", h)), nil)
	tethertest.WaitLinked(t, l1, 10*time.Second)
	tethertest.WaitLinked(t, l2, 10*time.Second)
	applyPolicy(t, store, h, policyV1)

	userOpts := func(name, role string) []nats.Option {
		path, err := store.AddCloudUser(name, role, nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return append(cloudUserOptions(t, path), nats.RootCAs(store.CAFile()))
	}
	dash := connectPolicyClient(t, h.ClientURL(), userOpts("dash-u", "dash")...)
	ops := connectPolicyClient(t, h.ClientURL(), userOpts("ops-u", "maintenance")...)
	billing := connectPolicyClient(t, h.ClientURL(), userOpts("billing-u", "billing")...)
	credsBefore := map[string][]byte{}
	for _, u := range []string{"dash-u", "ops-u", "billing-u"} {
		credsBefore[u], _ = securefile.Read(store.Dir() + "/users/" + u + ".creds")
	}
	admin := tethertest.ConnectCloud(t, store, h)

	// The billing service answers edges' calls (through the hubs'
	// router), naming the calling edge the router vouches for.
	if _, err := billing.nc.Subscribe("cloud.svc.billing.>", func(m *nats.Msg) {
		var c contract.Caller
		_ = json.Unmarshal([]byte(m.Header.Get(contract.HeaderCaller)), &c)
		_ = m.Respond([]byte("billed " + c.Name))
	}); err != nil {
		t.Fatal(err)
	}
	// ber-2's local echo service (a plain responder), for linked edges'
	// calls.
	at1 := tethertest.Connect(t, l1.ClientURL())
	at2 := tethertest.Connect(t, l2.ClientURL())
	if _, err := at2.Subscribe("svc.echo.echo", func(m *nats.Msg) { _ = m.Respond([]byte("echo from ber-2")) }); err != nil {
		t.Fatal(err)
	}
	_ = at2.Flush()

	canRead := func(t *testing.T, c *policyClient, edge string) {
		t.Helper()
		sub, err := c.nc.SubscribeSync(fmt.Sprintf("edges.%s.telemetry.>", edge))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		tethertest.WaitFor(t, 10*time.Second, func() error {
			_ = admin.Publish(fmt.Sprintf("edges.%s.telemetry.temp", edge), []byte("21"))
			_, err := sub.NextMsg(100 * time.Millisecond)
			return err
		})
	}
	cannotRead := func(t *testing.T, c *policyClient, edge string) {
		t.Helper()
		subject := fmt.Sprintf("edges.%s.telemetry.>", edge)
		sub, err := c.nc.SubscribeSync(subject)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		c.refused(t, "Subscription", subject)
	}
	js := func(c *policyClient) jetstream.JetStream {
		j, _ := jetstream.NewWithDomain(c.nc, contract.CloudDomain, jetstream.WithDefaultTimeout(2*time.Second))
		return j
	}
	canCommand := func(t *testing.T, c *policyClient, edge string) {
		t.Helper()
		tethertest.WaitFor(t, 10*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := js(c).Publish(ctx, fmt.Sprintf("edges.%s.cmd.reboot", edge), []byte("now"))
			return err
		})
	}
	cannotCommand := func(t *testing.T, c *policyClient, edge string) {
		t.Helper()
		subject := fmt.Sprintf("edges.%s.cmd.reboot", edge)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := js(c).Publish(ctx, subject, []byte("now")); err == nil {
			t.Fatalf("command to %s was taken", edge)
		}
		c.refused(t, "Publish", subject)
	}
	canCall := func(t *testing.T, at *nats.Conn, subject, want string) {
		t.Helper()
		tethertest.WaitFor(t, 15*time.Second, func() error {
			m, err := at.Request(subject, []byte("x"), 2*time.Second)
			if err != nil {
				return err
			}
			if string(m.Data) != want {
				return fmt.Errorf("answer %q (%s), want %q", m.Data, m.Header.Get(contract.HeaderServiceError), want)
			}
			return nil
		})
	}
	// A refused call is answered at once by the edge's gateway: the hub
	// gives the edge's link no interest for a call the edge may not make
	// (its leaf user may not publish it), so the server refuses it.
	cannotCall := func(t *testing.T, at *nats.Conn, subject string) {
		t.Helper()
		tethertest.WaitFor(t, 15*time.Second, func() error {
			start := time.Now()
			m, err := at.Request(subject, []byte("x"), 3*time.Second)
			if err != nil {
				return fmt.Errorf("request %s: %v, want an error answer at once", subject, err)
			}
			if c := m.Header.Get(contract.HeaderServiceErrorCode); c != strconv.Itoa(contract.CodeEdgeOffline) || time.Since(start) > time.Second {
				return fmt.Errorf("request %s: answer %q code %q after %s, want %d at once", subject, m.Data, c, time.Since(start), contract.CodeEdgeOffline)
			}
			return nil
		})
	}
	gatewayKey := func(t *testing.T, edge, role string) policy.ServiceGrant {
		t.Helper()
		gws, err := store.Gateways()
		if err != nil {
			t.Fatal(err)
		}
		for _, gw := range gws {
			for _, g := range gw.Grants {
				if gw.Edge == edge && g.Caller.Kind == policy.PrincipalRole && g.Caller.Name == role {
					return g
				}
			}
		}
		t.Fatalf("no gateway grant for role %s on %s in %+v", role, edge, gws)
		return policy.ServiceGrant{}
	}

	check := func(v int) {
		readable, other := "ber-1", "ber-2"
		caller, notCaller := at1, at2
		if v == 2 {
			readable, other = other, readable
			caller, notCaller = at2, at1
		}
		t.Run(fmt.Sprintf("v%d/telemetry", v), func(t *testing.T) {
			canRead(t, dash, readable)
			cannotRead(t, dash, other)
			cannotRead(t, ops, readable)
			// Stored telemetry: a consumer filtered on the granted edge only.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cons, err := js(dash).OrderedConsumer(ctx, contract.TelemetryStream, jetstream.OrderedConsumerConfig{
				NamePrefix: "dash-u", FilterSubjects: []string{fmt.Sprintf("edges.%s.telemetry.>", readable)}})
			if err != nil {
				t.Fatalf("stored telemetry of %s: %v", readable, err)
			}
			if _, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil {
				t.Fatalf("stored telemetry of %s: %v", readable, err)
			}
			short, cancel2 := context.WithTimeout(ctx, time.Second)
			defer cancel2()
			if _, err := js(dash).OrderedConsumer(short, contract.TelemetryStream, jetstream.OrderedConsumerConfig{
				NamePrefix: "dash-u", FilterSubjects: []string{fmt.Sprintf("edges.%s.telemetry.>", other)}}); err == nil {
				t.Errorf("a consumer on %s's stored telemetry was created", other)
			}
			dash.refused(t, "Publish", "$JS.API.CONSUMER.CREATE.TELEMETRY.", ".edges."+other+".telemetry.")
		})
		t.Run(fmt.Sprintf("v%d/commands", v), func(t *testing.T) {
			canCommand(t, ops, readable)
			cannotCommand(t, ops, other)
			cannotCommand(t, dash, readable)
		})
		t.Run(fmt.Sprintf("v%d/edge-calls-cloud", v), func(t *testing.T) {
			canCall(t, caller, "cloud.svc.billing.usage", "billed "+readable)
			cannotCall(t, notCaller, "cloud.svc.billing.usage")
		})
		t.Run(fmt.Sprintf("v%d/link", v), func(t *testing.T) {
			if v == 1 {
				cannotCall(t, at1, "edges.ber-2.svc.echo.echo")
				cannotCall(t, at2, "edges.ber-1.svc.echo.echo") // ber-2 allows no link in v1
			} else {
				canCall(t, at1, "edges.ber-2.svc.echo.echo", "echo from ber-2")
			}
		})
		t.Run(fmt.Sprintf("v%d/gateway", v), func(t *testing.T) {
			// The gateway recognises the role by the key that signed the
			// caller: the issuer of the user's JWT.
			g := gatewayKey(t, "ber-1", "quality")
			wantRate := map[int]float64{1: 5, 2: 1}[v]
			if g.Rate != wantRate || g.Service != "vision" {
				t.Errorf("gateway grant %+v, want vision at %v/s", g, wantRate)
			}
			path, err := store.AddCloudUser(fmt.Sprintf("quality-%d", v), "quality", nil, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			creds, _ := os.ReadFile(path)
			ujwt, _ := jwt.ParseDecoratedJWT(creds)
			uc, err := jwt.DecodeUserClaims(ujwt)
			if err != nil {
				t.Fatal(err)
			}
			if uc.Issuer != g.Caller.Key {
				t.Errorf("quality user issued by %s, gateway expects %s", uc.Issuer, g.Caller.Key)
			}
		})
	}
	check(1)
	reconnects := func() uint64 { return dash.nc.Stats().Reconnects + ops.nc.Stats().Reconnects }
	before := reconnects()
	applyPolicy(t, store, h, policyV2)
	t.Logf("after apply: dash and ops reconnected %d times (same creds)", reconnects()-before)
	check(2)
	for u, b := range credsBefore {
		if now, _ := securefile.Read(store.Dir() + "/users/" + u + ".creds"); string(now) != string(b) {
			t.Errorf("creds of %s changed", u)
		}
	}
}

// runTether runs the tether binary to completion and returns its stdout,
// stderr and exit code.
func runTether(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tetherBinary(t), args...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("tether %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// TestPolicyApplyMissingHub: 'tether policy apply --push' reports each
// hub's answer; with a hub down it names the hub as missing, fails and
// records the version as not pushed; once the hub is back the same apply
// pushes again and converges.
func TestPolicyApplyMissingHub(t *testing.T) {
	store := tethertest.NewStore(t)
	hubs := tethertest.RunCluster(t, store, 3)
	tethertest.AddEdge(t, store, "ber-1", hubs...)
	dir := t.TempDir()
	write := func(name, src string) string {
		path := dir + "/" + name
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p1, p2 := write("p1.yaml", policyV1), write("p2.yaml", policyV2)

	out, errOut, code := runTether(t, "policy", "apply", p1, "--dir", store.Dir(), "--push", hubs[0].ClientURL())
	if code != 0 || !strings.Contains(out, "hub hub-1: took 2 of 2") || !strings.Contains(out, "hub hub-2: took 2 of 2") ||
		!strings.Contains(out, "policy version 1 applied") {
		t.Fatalf("first apply: exit %d\n%s\n%s", code, out, errOut)
	}

	if err := hubs[1].Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runTether(t, "policy", "apply", p2, "--dir", store.Dir(), "--push", hubs[0].ClientURL())
	if code == 0 || !strings.Contains(out, "hub hub-2: MISSING") || !strings.Contains(errOut, "not in force everywhere") {
		t.Fatalf("apply with hub-2 down: exit %d, want a failure naming hub-2\n%s\n%s", code, out, errOut)
	}
	hist, err := store.PolicyHistory()
	if err != nil || len(hist) != 2 || hist[1].Pushed {
		t.Fatalf("history %+v (%v): want version 2 recorded as not pushed", hist, err)
	}

	hubs[1] = tethertest.RestartHub(t, hubs[1], nil)
	out, errOut, code = runTether(t, "policy", "apply", p2, "--dir", store.Dir(), "--push", hubs[0].ClientURL())
	if code != 0 || !strings.Contains(out, "pushed again") || !strings.Contains(out, "hub hub-2: took") ||
		!strings.Contains(out, "policy version 3 applied") {
		t.Fatalf("re-apply after hub-2 is back: exit %d\n%s\n%s", code, out, errOut)
	}
}
