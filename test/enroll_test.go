package test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/sitefile"

	"encoding/json"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// enrollConfig is a leaf config for a device that has no bundle yet: the
// bundle will be written in its data dir.
func enrollConfig(t *testing.T) leaf.Config {
	c := tethertest.LeafConfig(t, "")
	c.Bundle = filepath.Join(c.DataDir, "edge.bundle")
	return c
}

func enroll(t *testing.T, c leaf.Config, tok *sitefile.EnrollToken, log *tethertest.LogBuffer) (*sitefile.Bundle, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return leaf.Enroll(ctx, c, tok, log.Logger())
}

// TestEnroll: a device enrolls with a token over TLS or WebSocket (the
// port it uses later), then runs as a normal edge with its own key: its
// telemetry reaches the CLOUD stream, and the store holds only the public
// JWT whose subject is the device's key.
func TestEnroll(t *testing.T) {
	store := tethertest.NewStore(t)
	var hubLog tethertest.LogBuffer
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), hubLog.Logger())
	cloud := tethertest.ConnectCloud(t, store, h)
	js, _ := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	for _, transport := range []string{leaf.TransportTLS, leaf.TransportWebsocket} {
		t.Run(transport, func(t *testing.T) {
			edgeName := "plant-" + transport
			var edgeLog tethertest.LogBuffer
			tok := tethertest.EnrollToken(t, store, edgeName, 0, h)
			text, _ := tok.Encode()
			c := enrollConfig(t)
			c.Transport = transport

			start := time.Now()
			b, err := enroll(t, c, tok, &edgeLog)
			if err != nil {
				t.Fatalf("enroll: %v\nedge log:\n%s", err, edgeLog.String())
			}
			enrolled := time.Since(start)
			l := tethertest.RunLeaf(t, c, edgeLog.Logger())
			tethertest.WaitLinked(t, l, 10*time.Second)
			t.Logf("enrollment over %s: token to linked with the new creds in %s (bundle written after %s); token file %d bytes",
				transport, time.Since(start).Round(time.Millisecond), enrolled.Round(time.Millisecond), len(text)+1)

			fi, err := os.Stat(c.Bundle)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("bundle %s: %v mode %v, want 0600", c.Bundle, err, fi.Mode().Perm())
			}
			ujwt, _ := jwt.ParseDecoratedJWT([]byte(b.Creds))
			ukp, _ := jwt.ParseDecoratedUserNKey([]byte(b.Creds))
			devicePub, _ := ukp.PublicKey()
			seed, _ := ukp.Seed()
			if current, err := store.LeafUser(edgeName); err != nil || current != devicePub {
				t.Errorf("store's current leaf user = %s (%v), want the device's key %s", current, err, devicePub)
			}
			if uc, _ := jwt.DecodeUserClaims(ujwt); uc.Subject != devicePub {
				t.Errorf("leaf JWT subject %s, want %s", uc.Subject, devicePub)
			}
			assertStoreLacks(t, store, edgeName, string(seed))
			if !hubLog.Contains("enrollment accepted") || !hubLog.Contains("user="+devicePub) {
				t.Errorf("hub logged no 'enrollment accepted' for %s:\n%s", devicePub, hubLog.String())
			}

			edge := tethertest.Connect(t, l.ClientURL())
			if err := edge.Publish("telemetry.temp", []byte("21.5")); err != nil {
				t.Fatal(err)
			}
			subject := "edges." + edgeName + ".telemetry.temp"
			tethertest.WaitFor(t, 10*time.Second, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				s, err := js.Stream(ctx, contract.TelemetryStream)
				if err != nil {
					return err
				}
				m, err := s.GetLastMsgForSubject(ctx, subject)
				if err != nil {
					return fmt.Errorf("cloud stream, %s: %w", subject, err)
				}
				if string(m.Data) != "21.5" {
					return fmt.Errorf("cloud got %q, want 21.5", m.Data)
				}
				return nil
			})
		})
	}
}

// TestEnrollCluster: in a 3-hub cluster a token used through one hub is
// refused through another (the single-use record is replicated).
func TestEnrollCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("3-hub cluster: skipped in -short")
	}
	store := tethertest.NewStore(t)
	hubs := tethertest.RunCluster(t, store, 3)
	tok := tethertest.EnrollToken(t, store, "plant-7", 0, hubs...)
	var log tethertest.LogBuffer
	first := *tok
	first.HubURLs = []string{hubs[0].LeafURL()}
	if _, err := enroll(t, enrollConfig(t), &first, &log); err != nil {
		t.Fatalf("enroll through hub-1: %v", err)
	}
	again := *tok
	again.HubURLs = []string{hubs[2].LeafURL()}
	if _, err := enroll(t, enrollConfig(t), &again, &log); !errors.Is(err, leaf.ErrEnrollRefused) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("reuse through hub-3: %v, want %v saying already used", err, leaf.ErrEnrollRefused)
	}
}

// assertStoreLacks checks that no file of the store holds secret and that
// the edge has no leaf.creds.
func assertStoreLacks(t *testing.T, store *accounts.Store, edge, secret string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(store.Dir(), "edges", edge, "leaf.creds")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("store has edges/%s/leaf.creds (%v)", edge, err)
	}
	filepath.WalkDir(store.Dir(), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if data, _ := os.ReadFile(path); strings.Contains(string(data), secret) {
				t.Errorf("store file %s holds the device's seed", path)
			}
		}
		return nil
	})
}

// edgeState is what an enrollment may change in the store: the edge's
// account JWT and its recorded leaf user.
func edgeState(t *testing.T, store *accounts.Store, edge string) string {
	t.Helper()
	a, err := store.Account(contract.EdgeAccountName(edge))
	if err != nil {
		t.Fatal(err)
	}
	user, _ := os.ReadFile(filepath.Join(store.Dir(), "edges", edge, "leaf.jwt"))
	return a.JWT + "\n" + string(user)
}

// TestEnrollRefused: every refused enrollment fails with a clear error on
// the device, writes no bundle and changes nothing in the store.
func TestEnrollRefused(t *testing.T) {
	store := tethertest.NewStore(t)
	var hubLog tethertest.LogBuffer
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), hubLog.Logger())

	// A token that already enrolled a device.
	used := tethertest.EnrollToken(t, store, "used", 0, h)
	var firstLog tethertest.LogBuffer
	if _, err := enroll(t, enrollConfig(t), used, &firstLog); err != nil {
		t.Fatalf("first enrollment: %v\n%s", err, firstLog.String())
	}

	expired := tethertest.EnrollToken(t, store, "old", 0, h)
	expired.Expires = time.Now().Add(-time.Second)

	// The token says it is valid (the device's clock is behind) but its
	// user JWT has expired: the hub refuses the connection.
	stale := tethertest.EnrollToken(t, store, "stale", time.Second, h)
	uc, _ := jwt.DecodeUserClaims(stale.JWT)
	stale.Expires = time.Now().Add(time.Hour)
	tethertest.WaitFor(t, 3*time.Second, func() error {
		if now := time.Now().Unix(); now <= uc.Expires {
			return fmt.Errorf("now %d, enroll user expires %d", now, uc.Expires)
		}
		return nil
	})

	forged := tethertest.EnrollToken(t, store, "forged", 0, h)
	forgedCreds := forgeUser(t, store, contract.EdgeAccountName("forged"))
	forged.JWT, _ = jwt.ParseDecoratedJWT([]byte(forgedCreds))
	fkp, _ := jwt.ParseDecoratedUserNKey([]byte(forgedCreds))
	fseed, _ := fkp.Seed()
	forged.Seed = string(fseed)

	// Edge a's token relabelled for edge b: it still links into a's
	// account, whose import names a, and the registrar sees the mismatch.
	tethertest.EnrollToken(t, store, "b", 0, h)
	aForB := tethertest.EnrollToken(t, store, "a", 0, h)
	aForB.Edge, aForB.Domain = "b", contract.EdgeDomain("b")

	for _, tc := range []struct {
		name, edge string
		tok        *sitefile.EnrollToken
		is         error
		want       string
		hubLog     string
	}{
		{"reused", "used", used, leaf.ErrEnrollRefused, "enrollment token already used (a token enrolls one device, once: if this device enrolled before, run it with its bundle; otherwise ask the operator for a new one: tether edge token used)", "reason=\"enrollment token already used\""},
		{"expired", "old", expired, sitefile.ErrTokenExpired, "ask the operator for a new one", ""},
		{"expired at the hub", "stale", stale, sitefile.ErrTokenExpired, "refused by the hub (Authorization Violation): enrollment token expired at", ""},
		{"forged", "forged", forged, leaf.ErrEnrollRefused, "authorization failed", ""},
		{"edge a's token for edge b", "b", aForB, leaf.ErrEnrollRefused, `the token is for edge "b" but was used on edge a`, "enrollment refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := edgeState(t, store, tc.edge) + edgeState(t, store, "a")
			var edgeLog tethertest.LogBuffer
			c := enrollConfig(t)
			// A data dir the enrollment creates goes again when it fails.
			fresh := filepath.Join(c.DataDir, "new")
			c.DataDir = filepath.Join(fresh, "data")
			c.Bundle = filepath.Join(c.DataDir, "edge.bundle")
			_, err := enroll(t, c, tc.tok, &edgeLog)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v saying %q", err, tc.is, tc.want)
			}
			// Only the hub says ErrEnrollRefused: an expired token is
			// refused on the device, before dialling.
			if dialled := errors.Is(err, leaf.ErrEnrollRefused); dialled != (tc.name != "expired") {
				t.Errorf("refused by the hub: %v, want %v", dialled, tc.name != "expired")
			}
			t.Logf("device: %v", err)
			if _, err := os.Stat(c.Bundle); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("bundle written after a refusal (%v)", err)
			}
			if _, err := os.Stat(fresh); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the data dir made for the refused enrollment is left behind (%v)", err)
			}
			if after := edgeState(t, store, tc.edge) + edgeState(t, store, "a"); after != before {
				t.Errorf("store changed by a refused enrollment")
			}
			if tc.hubLog != "" && !hubLog.Contains(tc.hubLog) {
				t.Errorf("hub log lacks %q:\n%s", tc.hubLog, hubLog.String())
			}
		})
	}
	if n := strings.Count(hubLog.String(), "enrollment accepted"); n != 1 {
		t.Errorf("hub accepted %d enrollments, want 1", n)
	}
}

// TestEnrollForgedRequestInfo: a cloud client that publishes straight to
// the registrar with a made-up Nats-Request-Info claiming edge b's account
// cannot turn edge a's token into a user for b, nor enroll without the
// token's seed.
func TestEnrollForgedRequestInfo(t *testing.T) {
	store := tethertest.NewStore(t)
	var hubLog tethertest.LogBuffer
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), hubLog.Logger())
	tokA := tethertest.EnrollToken(t, store, "a", 0, h)
	tethertest.AddEnrollEdge(t, store, "b", h)
	eb, _ := store.Edge("b")
	enrollA, _ := tokA.EnrollUser()
	cloud := tethertest.ConnectCloud(t, store, h)

	ukp, _ := nkeys.CreateUser()
	good, err := tokA.NewEnrollRequest(ukp)
	if err != nil {
		t.Fatal(err)
	}
	forB := *good
	forB.Edge = "b"
	noSeed := *good
	noSeed.TokenSig = good.UserSig
	for _, tc := range []struct {
		name, edge, account string
		req                 *contract.EnrollRequest
		want                string
	}{
		{"no request info", "a", "", good, "no requestor identity"},
		{"a's token for b", "b", eb.Account.Pub, &forB, "enroll user JWT not issued by edge b's account"},
		{"without the token's seed", "a", tokA.Account, &noSeed, "proof of holding the token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := edgeState(t, store, "a") + edgeState(t, store, "b")
			m := nats.NewMsg(contract.CloudEnrollSubject(tc.edge))
			m.Data, _ = json.Marshal(tc.req)
			if tc.account != "" {
				m.Header.Set(server.ClientInfoHdr, fmt.Sprintf(`{"acc":%q,"user":%q}`, tc.account, enrollA))
			}
			resp, err := cloud.RequestMsg(m, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			var rep contract.EnrollReply
			json.Unmarshal(resp.Data, &rep)
			if rep.JWT != "" || !strings.Contains(rep.Error, tc.want) {
				t.Errorf("reply %+v, want an error saying %q", rep, tc.want)
			}
			if after := edgeState(t, store, "a") + edgeState(t, store, "b"); after != before {
				t.Errorf("store changed by a refused enrollment")
			}
		})
	}
}

// TestEnrollTwiceOnOneDevice: a device with a bundle is not enrolled again
// and its bundle is left alone; its normal leaf user cannot enroll.
func TestEnrollTwiceOnOneDevice(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	var log tethertest.LogBuffer
	c := enrollConfig(t)
	if _, err := enroll(t, c, tethertest.EnrollToken(t, store, "plant-7", 0, h), &log); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(c.Bundle)
	tok2, err := store.NewEnrollToken("plant-7", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enroll(t, c, tok2, &log); !errors.Is(err, leaf.ErrAlreadyEnrolled) || !strings.Contains(err.Error(), c.Bundle) {
		t.Errorf("second enrollment: %v, want %v naming %s", err, leaf.ErrAlreadyEnrolled, c.Bundle)
	}
	if after, _ := os.ReadFile(c.Bundle); string(after) != string(before) {
		t.Error("bundle changed")
	}
	l := tethertest.RunLeaf(t, c, nil)
	tethertest.WaitLinked(t, l, 10*time.Second)
	local := tethertest.Connect(t, l.ClientURL())
	if _, err := local.Request(contract.EnrollSubject, []byte("{}"), 500*time.Millisecond); err == nil {
		t.Error("the edge's leaf user reached the registrar")
	}
}

// TestEnrollStoreNotWritable: a hub whose store cannot take the leaf.jwt
// record still enrolls the device and logs that the record is missing.
func TestEnrollStoreNotWritable(t *testing.T) {
	store := tethertest.NewStore(t)
	var hubLog tethertest.LogBuffer
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), hubLog.Logger())
	tok := tethertest.EnrollToken(t, store, "plant-7", 0, h)
	// A non-empty directory where leaf.jwt goes: the rename fails even for
	// root, like a read-only mount would.
	blocker := filepath.Join(store.Dir(), "edges", "plant-7", "leaf.jwt")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	var log tethertest.LogBuffer
	c := enrollConfig(t)
	if _, err := enroll(t, c, tok, &log); err != nil {
		t.Fatalf("enroll with an unwritable store: %v", err)
	}
	if !hubLog.Contains("enrolled leaf user not recorded in the store") {
		t.Errorf("hub did not log the missing record:\n%s", hubLog.String())
	}
	l := tethertest.RunLeaf(t, c, nil)
	tethertest.WaitLinked(t, l, 10*time.Second)
}

// TestEnrollThenRotate: an enrolled edge is an ordinary edge: 'edge
// rotate' replaces its device-born key with another device-born key.
func TestEnrollThenRotate(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	var log tethertest.LogBuffer
	c := enrollConfig(t)
	if _, err := enroll(t, c, tethertest.EnrollToken(t, store, "plant-7", 0, h), &log); err != nil {
		t.Fatal(err)
	}
	enrolled, _ := store.LeafUser("plant-7")
	l := tethertest.RunLeaf(t, c, nil)
	tethertest.WaitLinked(t, l, 10*time.Second)
	res, err := rotateEdge(t, store, h, "plant-7")
	if err != nil {
		t.Fatalf("rotate an enrolled edge: %v", err)
	}
	if res.Previous != enrolled || res.User == enrolled {
		t.Errorf("rotated %s -> %s, want from the enrolled key %s to a new one", res.Previous, res.User, enrolled)
	}
	if _, err := store.Bundle("plant-7"); !errors.Is(err, accounts.ErrKeyOnDevice) {
		t.Errorf("Bundle after rotation: %v, want %v", err, accounts.ErrKeyOnDevice)
	}
}

// TestEnrollRepeatedRequest: a device whose answer was lost asks again
// with the same key and gets its user again; another key with the same
// token is refused. (The request goes straight to the registrar with the
// identity header the hub would set.)
func TestEnrollRepeatedRequest(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tok := tethertest.EnrollToken(t, store, "plant-7", 0, h)
	enrollPub, _ := tok.EnrollUser()
	cloud := tethertest.ConnectCloud(t, store, h)
	ask := func(kp nkeys.KeyPair) contract.EnrollReply {
		t.Helper()
		req, err := tok.NewEnrollRequest(kp)
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(contract.CloudEnrollSubject("plant-7"))
		m.Data, _ = json.Marshal(req)
		m.Header.Set(server.ClientInfoHdr, fmt.Sprintf(`{"acc":%q,"user":%q}`, tok.Account, enrollPub))
		resp, err := cloud.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var rep contract.EnrollReply
		if err := json.Unmarshal(resp.Data, &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	device, _ := nkeys.CreateUser()
	devicePub, _ := device.PublicKey()
	for i := 1; i <= 2; i++ {
		rep := ask(device)
		uc, err := jwt.DecodeUserClaims(rep.JWT)
		if err != nil || uc.Subject != devicePub {
			t.Fatalf("request %d: %+v (%v), want a user JWT for %s", i, rep, err, devicePub)
		}
	}
	other, _ := nkeys.CreateUser()
	if rep := ask(other); rep.JWT != "" || rep.Error != "enrollment token already used" {
		t.Errorf("another key with a used token: %+v, want 'enrollment token already used'", rep)
	}
	if current, _ := store.LeafUser("plant-7"); current != devicePub {
		t.Errorf("current leaf user %s, want the device's %s", current, devicePub)
	}
}
