package tethertest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/hub"
)

// AddEnrollEdge adds edge to the store for enrollment (no leaf creds in
// the store) unless it exists, pushes its account to the given running
// hubs and prepares its command consumer.
func AddEnrollEdge(t testing.TB, store *accounts.Store, edge string, hubs ...*hub.Server) {
	t.Helper()
	addEdge(t, store, edge, store.AddEdgeForEnrollment, hubs...)
}

// EnrollToken makes an enrollment token for edge (adding the edge for
// enrollment if needed) valid for ttl, pointed at the given hubs.
func EnrollToken(t testing.TB, store *accounts.Store, edge string, ttl time.Duration, hubs ...*hub.Server) *sitefile.EnrollToken {
	t.Helper()
	AddEnrollEdge(t, store, edge, hubs...)
	tok, err := store.NewEnrollToken(edge, ttl)
	if err != nil {
		t.Fatalf("enrollment token: %v", err)
	}
	tok.HubURLs, tok.WebsocketURLs = nil, nil
	for _, h := range hubs {
		tok.HubURLs = append(tok.HubURLs, h.LeafURL())
		tok.WebsocketURLs = append(tok.WebsocketURLs, h.WebsocketURL())
	}
	return tok
}

// TokenFile writes tok to a 0600 file and returns its path.
func TokenFile(t testing.TB, tok *sitefile.EnrollToken) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), tok.Edge+".token")
	if err := sitefile.WriteEnrollToken(path, tok); err != nil {
		t.Fatalf("write token: %v", err)
	}
	return path
}
