package test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// refusedBy waits until both logs show the refusal, then asserts the edge
// never linked.
func waitLogs(t *testing.T, d time.Duration, logs map[string]*tethertest.LogBuffer, want map[string]string) {
	t.Helper()
	tethertest.WaitFor(t, d, func() error {
		for side, s := range want {
			if !logs[side].Contains(s) {
				return &missingLog{side, s, logs[side].String()}
			}
		}
		return nil
	})
}

type missingLog struct{ side, want, got string }

func (m *missingLog) Error() string {
	return "no log line containing " + strconvQuote(m.want) + " on the " + m.side + " side; got:\n" + m.got
}

func strconvQuote(s string) string { return `"` + s + `"` }

// TestLeafWithForeignCARefused: an edge whose bundle trusts another CA
// refuses the hub's certificate; both sides log why; the link never forms.
func TestLeafWithForeignCARefused(t *testing.T) {
	store := tethertest.NewStore(t)
	var hubLog, edgeLog tethertest.LogBuffer
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), hubLog.Logger())
	tethertest.AddEdge(t, store, "plant-7", h)

	other := tethertest.NewStore(t) // another fabric, another CA
	b, err := store.Bundle("plant-7")
	if err != nil {
		t.Fatal(err)
	}
	foreignCA, err := os.ReadFile(other.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	b.CA = string(foreignCA)
	b.HubURLs = []string{h.LeafURL()}
	path := t.TempDir() + "/plant-7.bundle"
	if err := sitefile.WriteBundle(path, b); err != nil {
		t.Fatal(err)
	}
	l := tethertest.RunLeaf(t, tethertest.LeafConfig(t, path), edgeLog.Logger())
	waitLogs(t, 10*time.Second, map[string]*tethertest.LogBuffer{"hub": &hubLog, "edge": &edgeLog}, map[string]string{
		"edge": "certificate signed by unknown authority",
		"hub":  "TLS leafnode handshake error: remote error: tls: bad certificate",
	})
	if l.Link().Connected || h.NATS().NumLeafNodes() != 0 {
		t.Fatalf("edge trusting a foreign CA linked to the hub: %+v", l.Link())
	}
}

// TestPlaintextRefused: a client that does not speak TLS to the hub's
// client or leafnode port gets no service (no PONG), the connection is
// closed, and the hub logs the failed handshake. nats-server logs
// plaintext probes at debug level (load balancers probe ports), so the hub
// runs with a debug logger here.
func TestPlaintextRefused(t *testing.T) {
	store := tethertest.NewStore(t)
	var hubLog tethertest.LogBuffer
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), hubLog.Logger())
	for _, tc := range []struct{ port, url, log string }{
		{"client", h.ClientURL(), "TLS handshake error"},
		{"leafnode", h.LeafURL(), "TLS leafnode handshake error"},
	} {
		t.Run(tc.port, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", strings.TrimPrefix(tc.url, "tls://"), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			r := bufio.NewReader(conn)
			info, err := r.ReadString('\n')
			if err != nil || !strings.Contains(info, `"tls_required":true`) {
				t.Fatalf("INFO = %q, %v; want tls_required", info, err)
			}
			if _, err := conn.Write([]byte("CONNECT {}\r\nPING\r\n")); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(r)
			if strings.Contains(string(rest), "PONG") {
				t.Fatalf("plaintext client got service: %q", rest)
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("hub kept the plaintext connection open")
			}
			waitLogs(t, 5*time.Second, map[string]*tethertest.LogBuffer{"hub": &hubLog}, map[string]string{"hub": tc.log})
		})
	}
}

// TestBadCredsRefused: an expired leaf user, a user of an account the hubs
// do not know, and a user signed by a key outside the account are refused.
func TestBadCredsRefused(t *testing.T) {
	store := tethertest.NewStore(t)
	var hubLog tethertest.LogBuffer
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), hubLog.Logger())
	tethertest.AddEdge(t, store, "plant-7", h)
	acc := contract.EdgeAccountName("plant-7")

	expired, err := store.IssueUser(acc, "old", contract.LeafPermissions(), contract.LeafConnectionTypes(), time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// An edge account minted by another operator, never pushed to these hubs.
	other := tethertest.NewStore(t)
	if _, err := other.AddEdge("plant-7"); err != nil {
		t.Fatal(err)
	}
	otherBundle, err := other.Bundle("plant-7")
	if err != nil {
		t.Fatal(err)
	}
	forged := forgeUser(t, store, acc)

	for _, tc := range []struct {
		name    string
		creds   string
		account string
	}{
		{"expired", string(expired), ""},
		{"foreign account", otherBundle.Creds, otherBundle.Account},
		{"forged signer", forged, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := store.Bundle("plant-7")
			if err != nil {
				t.Fatal(err)
			}
			b.Creds = tc.creds
			if tc.account != "" {
				b.Account = tc.account
			}
			b.HubURLs = []string{h.LeafURL()}
			path := t.TempDir() + "/b.bundle"
			if err := sitefile.WriteBundle(path, b); err != nil {
				t.Fatal(err)
			}
			var edgeLog tethertest.LogBuffer
			l := tethertest.RunLeaf(t, tethertest.LeafConfig(t, path), edgeLog.Logger())
			waitLogs(t, 10*time.Second, map[string]*tethertest.LogBuffer{"edge": &edgeLog}, map[string]string{
				"edge": "Authorization Violation",
			})
			if l.Link().Connected {
				t.Fatalf("edge with %s creds linked", tc.name)
			}
		})
	}
	if !hubLog.Contains("authentication error") {
		t.Errorf("hub log has no 'authentication error':\n%s", hubLog.String())
	}
}

// forgeUser returns creds for a user of account that claim to be issued by
// it but are signed by a key the account does not list.
func forgeUser(t *testing.T, store *accounts.Store, account string) string {
	t.Helper()
	a, err := store.Account(account)
	if err != nil {
		t.Fatal(err)
	}
	rogue, _ := nkeys.CreateAccount()
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	uc := jwt.NewUserClaims(upub)
	uc.IssuerAccount = a.Pub
	uc.Permissions = contract.LeafPermissions()
	ujwt, err := uc.Encode(rogue)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	return string(creds)
}

// TestTamperedCredsRefused: a bundle whose user JWT was edited (wider
// permissions, original signature) is refused by the edge before it dials,
// naming the bundle, the field and the broken signature.
func TestTamperedCredsRefused(t *testing.T) {
	store := tethertest.NewStore(t)
	if _, err := store.AddEdge("plant-7"); err != nil {
		t.Fatal(err)
	}
	b, err := store.Bundle("plant-7")
	if err != nil {
		t.Fatal(err)
	}
	b.Creds = tamperUser(t, store, "plant-7")
	data, _ := json.Marshal(b)
	path := filepath.Join(t.TempDir(), "tampered.bundle")
	if err := writeSecret(path, string(data)); err != nil {
		t.Fatal(err)
	}
	l, err := leaf.New(tethertest.LeafConfig(t, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = l.Start(context.Background())
	if err == nil {
		_ = l.Shutdown(context.Background())
		t.Fatal("edge started with a tampered user JWT")
	}
	for _, want := range []string{path, "creds", "signature verification"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// tamperUser returns the edge's creds with the user JWT's payload edited
// (it claims publish rights on everything) and the signature kept.
func tamperUser(t *testing.T, store *accounts.Store, edge string) string {
	t.Helper()
	b, err := store.Bundle(edge)
	if err != nil {
		t.Fatal(err)
	}
	ujwt, err := jwt.ParseDecoratedJWT([]byte(b.Creds))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(ujwt, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["nats"].(map[string]any)["pub"] = map[string]any{"allow": []string{">"}}
	edited, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(edited)
	seed, err := jwt.ParseDecoratedNKey([]byte(b.Creds))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := seed.Seed()
	// jwt.FormatUserConfig would refuse the broken signature: write it out.
	return "-----BEGIN NATS USER JWT-----\n" + strings.Join(parts, ".") + "\n------END NATS USER JWT------\n\n" +
		"-----BEGIN USER NKEY SEED-----\n" + string(s) + "\n------END USER NKEY SEED------\n"
}
