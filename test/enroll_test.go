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

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/hub"
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

func enroll(t *testing.T, c leaf.Config, tok *accounts.EnrollToken, log *tethertest.LogBuffer) (*accounts.Bundle, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return leaf.Enroll(ctx, c, tok, log.Logger())
}

// TestEnroll: a device enrolls with a token, then runs as a normal edge
// with its own key: its telemetry reaches the CLOUD stream, and the store
// holds only the public JWT whose subject is the device's key.
func TestEnroll(t *testing.T) {
	store := tethertest.NewStore(t)
	var hubLog, edgeLog tethertest.LogBuffer
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), hubLog.Logger())
	tok := tethertest.EnrollToken(t, store, "plant-7", 0, h)
	text, _ := tok.Encode()
	c := enrollConfig(t)

	start := time.Now()
	b, err := enroll(t, c, tok, &edgeLog)
	if err != nil {
		t.Fatalf("enroll: %v\nedge log:\n%s", err, edgeLog.String())
	}
	enrolled := time.Since(start)
	l := tethertest.RunLeaf(t, c, edgeLog.Logger())
	tethertest.WaitLinked(t, l, 10*time.Second)
	t.Logf("enrollment: token to linked with the new creds in %s (registrar answered after %s); token %d bytes",
		time.Since(start).Round(time.Millisecond), enrolled.Round(time.Millisecond), len(text)+1)

	fi, err := os.Stat(c.Bundle)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bundle %s: %v mode %v, want 0600", c.Bundle, err, fi.Mode().Perm())
	}
	ujwt, _ := jwt.ParseDecoratedJWT([]byte(b.Creds))
	ukp, _ := jwt.ParseDecoratedUserNKey([]byte(b.Creds))
	devicePub, _ := ukp.PublicKey()
	seed, _ := ukp.Seed()
	if current, err := store.LeafUser("plant-7"); err != nil || current != devicePub {
		t.Errorf("store's current leaf user = %s (%v), want the device's key %s", current, err, devicePub)
	}
	if uc, _ := jwt.DecodeUserClaims(ujwt); uc.Subject != devicePub {
		t.Errorf("leaf JWT subject %s, want %s", uc.Subject, devicePub)
	}
	assertStoreLacks(t, store, "plant-7", string(seed))
	if !hubLog.Contains("enrollment accepted") {
		t.Errorf("hub logged no 'enrollment accepted':\n%s", hubLog.String())
	}

	edge := tethertest.Connect(t, l.ClientURL())
	if err := edge.Publish("telemetry.temp", []byte("21.5")); err != nil {
		t.Fatal(err)
	}
	cloud := tethertest.ConnectCloud(t, store, h)
	js, _ := jetstream.NewWithDomain(cloud, hub.JetStreamDomain)
	tethertest.WaitFor(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := js.Stream(ctx, hub.TelemetryStream)
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
