package test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/pki"
	"github.com/tether-fabric/tether/internal/sitefile"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// copiedLink is what a process holding a copy of an edge's creds (or of an
// enrollment token) links with: a listener-less nats-server with those
// creds, the fabric CA, and whatever it chose to present to the hub.
type copiedLink struct {
	hubURL, ca string
	creds      []byte
	name       string        // the server name it gives
	cluster    string        // its cluster name ("" for none)
	account    string        // the local account bound to the link ("" for $G)
	reconnect  time.Duration // how fast it comes back
}

func (c copiedLink) run(t *testing.T) *server.Server {
	t.Helper()
	credsFile := filepath.Join(t.TempDir(), "copy.creds")
	if err := os.WriteFile(credsFile, c.creds, 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := pki.Pool([]byte(c.ca))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(c.hubURL)
	if err != nil {
		t.Fatal(err)
	}
	remote := &server.RemoteLeafOpts{URLs: []*url.URL{u}, Credentials: credsFile, TLS: true, TLSConfig: pki.ClientTLS(pool), TLSTimeout: 5}
	o := &server.Options{ServerName: c.name, DontListen: true, NoSigs: true,
		LeafNode: server.LeafNodeOpts{ReconnectInterval: c.reconnect, Remotes: []*server.RemoteLeafOpts{remote}}}
	if c.account != "" {
		o.Accounts = []*server.Account{server.NewAccount(c.account)}
		remote.LocalAccount = c.account
	}
	o.Cluster.Name = c.cluster
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	return ns
}

// TestAdversaryUsedTokenCannotHoldLink: whoever kept a copy of an
// enrollment token links with its enroll user, again and again, after the
// device enrolled. Each of its links is closed, none holds the edge's one
// link: the real device, restarted meanwhile, links and stays linked.
func TestAdversaryUsedTokenCannotHoldLink(t *testing.T) {
	store := tethertest.NewStore(t)
	var hubLog tethertest.LogBuffer
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), hubLog.Logger())
	tok := tethertest.EnrollToken(t, store, "dev", 0, h)
	c := enrollConfig(t)
	if _, err := enroll(t, c, tok, &tethertest.LogBuffer{}); err != nil {
		t.Fatal(err)
	}
	real := tethertest.RunLeaf(t, c, nil)
	tethertest.WaitLinked(t, real, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := real.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// The token's copy links while the device is down.
	creds, err := jwt.FormatUserConfig(tok.JWT, []byte(tok.Seed))
	if err != nil {
		t.Fatal(err)
	}
	evil := copiedLink{hubURL: h.LeafURL(), ca: tok.CA, creds: creds, name: "copy-of-token", reconnect: 100 * time.Millisecond}.run(t)
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if evil.NumLeafNodes() == 0 {
			return fmt.Errorf("the token's copy is not linked yet")
		}
		return nil
	})

	again := tethertest.RunLeaf(t, c, nil)
	tethertest.WaitLinked(t, again, 10*time.Second)
	since := again.Link().Since
	// Linked, and it stays linked while the copy's links are closed and
	// come back (a close is noticed at once and moves Since).
	tethertest.WaitFor(t, 20*time.Second, func() error {
		if l := again.Link(); !l.Connected || !l.Since.Equal(since) {
			t.Fatalf("the real device's link went down (%+v) while a used token's copy links; hub log:\n%s", l, hubLog.String())
		}
		if n := hubLog.Count("link of a used enrollment token closed"); n < 2 {
			return fmt.Errorf("hub closed the used token's link %d times, want 2", n)
		}
		return nil
	})
	if n := hubLog.Count("second link for one edge identity refused") + hubLog.Count("live run's name but not its key"); n != 0 {
		t.Errorf("the hub refused %d links of the real device; hub log:\n%s", n, hubLog.String())
	}
}

// TestAdversaryCopyWithLiveName: a process holding a copy of an edge's
// creds links with the live run's server name, which any site client reads
// from the edge's INFO. The hubs refuse it every time (it lacks the run's
// TLS key): it never holds the edge's link, and the real edge keeps
// delivering. Given only the name, the real link never drops. Given the
// cluster name and the link's local account as well, nats-server itself
// replaces the live link on each attempt (docs/ARCHITECTURE.md, "One link
// per edge identity"); the real edge comes back and still delivers.
func TestAdversaryCopyWithLiveName(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mimicAll  bool
		reconnect time.Duration
	}{
		{"name", false, 100 * time.Millisecond},
		{"name, cluster and link account", true, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := tethertest.NewStore(t)
			var hubLog tethertest.LogBuffer
			h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), hubLog.Logger())
			bundle := tethertest.WriteBundle(t, store, "plant-7", h)
			var edgeLog tethertest.LogBuffer
			real := tethertest.RunLeaf(t, tethertest.LeafConfig(t, bundle), edgeLog.Logger())
			tethertest.WaitLinked(t, real, 10*time.Second)
			since := real.Link().Since

			site := tethertest.Connect(t, real.ClientURL())
			b, err := sitefile.LoadBundle(bundle)
			if err != nil {
				t.Fatal(err)
			}
			cp := copiedLink{hubURL: h.LeafURL(), ca: b.CA, creds: []byte(b.Creds), name: site.ConnectedServerName(), reconnect: tc.reconnect}
			if tc.mimicAll {
				cp.cluster, cp.account = site.ConnectedClusterName(), contract.EdgePlumbingAccount
			}
			t.Logf("the copy presents server name %q, cluster %q, link account %q", cp.name, cp.cluster, cp.account)
			cp.run(t)

			const refused = "link with the live run's name but not its key refused"
			tethertest.WaitFor(t, 20*time.Second, func() error {
				if n := hubLog.Count(refused); n < 3 {
					return fmt.Errorf("hub refused the copy %d times, want 3", n)
				}
				return nil
			})
			if !tc.mimicAll {
				if l := real.Link(); !l.Connected || !l.Since.Equal(since) {
					t.Fatalf("the real edge's link went down (%+v); hub log:\n%s", l, hubLog.String())
				}
			} else {
				if !hubLog.Contains("Replacing connection from same server") {
					t.Errorf("nats-server never replaced the live link: the copy did not mimic it; hub log:\n%s", hubLog.String())
				}
				// The edge says why its link keeps being interrupted.
				waitLogs(t, 10*time.Second, map[string]*tethertest.LogBuffer{"edge": &edgeLog},
					map[string]string{"edge": "a copy of edge plant-7's creds is in use"})
			}

			// 'tether status' says so while the copy keeps trying.
			cloudConn := tethertest.ConnectCloud(t, store, h)
			view := fleetView(t, store, h, cloudConn, "plant-7")
			if r := view.RefusedLink; r == nil || r.Reason != contract.RefusedCopy || r.Name != cp.name || r.Hub != "hub-1" {
				t.Errorf("status refused_link = %+v, want the copy (%s) refused by hub-1 as %q", r, cp.name, contract.RefusedCopy)
			}

			// The copy keeps trying; the real edge delivers.
			tethertest.WaitLinked(t, real, 10*time.Second)
			js, err := jetstream.New(site)
			if err != nil {
				t.Fatal(err)
			}
			pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := js.Publish(pctx, "telemetry.temp", []byte("21.5")); err != nil {
				t.Fatal(err)
			}
			cloud, _ := jetstream.NewWithDomain(cloudConn, contract.CloudDomain)
			tethertest.WaitFor(t, 15*time.Second, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				s, err := cloud.Stream(ctx, contract.TelemetryStream)
				if err != nil {
					return err
				}
				m, err := s.GetLastMsgForSubject(ctx, "edges.plant-7.telemetry.temp")
				if err != nil {
					return fmt.Errorf("cloud stream: %w", err)
				}
				if string(m.Data) != "21.5" {
					return fmt.Errorf("cloud got %q, want 21.5", m.Data)
				}
				return nil
			})
			if n := hubLog.Count("second link for one edge identity refused"); n != 0 {
				t.Errorf("the hub refused %d links of the real edge; hub log:\n%s", n, hubLog.String())
			}
		})
	}
}
