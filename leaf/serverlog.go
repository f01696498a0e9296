package leaf

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tether-fabric/tether/internal/natslog"
)

// authHintEvery bounds how often the hint is repeated while the hubs keep
// refusing the link.
const authHintEvery = time.Minute

// serverLog is the embedded server's logger with three additions:
//   - when a hub refuses the leaf link with "Authorization Violation", the
//     usual cause is that the hubs do not know the edge's account (an 'edge
//     add' whose push failed, or a hub that never loaded it), and the log
//     says how to fix that instead of only looping on the server's error;
//   - when a hub replaces the live link with another connection of the same
//     server name, the log says a copy of the edge's creds is in use;
//   - a fatal error of the server (it gave up starting, e.g. "Can't start
//     JetStream") is handed to Start, which fails at once with it instead
//     of waiting for a readiness that will never come.
type serverLog struct {
	*natslog.Logger
	log   *slog.Logger
	edge  string
	fatal chan error // first fatal error; buffered, never closed

	mu       sync.Mutex
	lastAuth time.Time // hints last given
	lastDup  time.Time
}

func newServerLog(nl *natslog.Logger, log *slog.Logger, edge string) *serverLog {
	return &serverLog{Logger: nl, log: log, edge: edge, fatal: make(chan error, 1)}
}

// Fatalf logs the server's fatal error and hands it to Start.
func (a *serverLog) Fatalf(format string, v ...any) {
	a.Logger.Fatalf(format, v...)
	select {
	case a.fatal <- fmt.Errorf(format, v...):
	default:
	}
}

// Errorf logs the server's error, then a hint when a hub refused the link
// or replaced it.
func (a *serverLog) Errorf(format string, v ...any) {
	a.Logger.Errorf(format, v...)
	if !strings.Contains(format, "Leafnode Error") {
		return
	}
	args := fmt.Sprint(v...)
	for _, h := range []struct {
		err  string
		last *time.Time
		hint string
	}{
		{"Authorization Violation", &a.lastAuth, fmt.Sprintf("the hubs refused this edge's link: the hubs may not know this edge's account: push it with 'tether edge push %s' (on the operator's machine, with --dir and --hub), or check that the edge was not revoked or removed", a.edge)},
		// A hub sends this to the older of two leaf connections with one
		// server name when it accepts the newer. This run's own reconnect
		// replaces a link already dead, which hears nothing: on a live
		// link it means another process gave this run's name.
		{server.DuplicateRemoteLeafnodeConnection.String(), &a.lastDup, fmt.Sprintf("a hub replaced this edge's live link with another connection giving this run's server name: a copy of edge %s's creds is in use; the hubs refuse it (it lacks this run's key) and this edge links again, but each attempt interrupts the link: rotate or revoke the edge", a.edge)},
	} {
		if strings.Contains(args, h.err) && a.due(h.last) {
			a.log.Error(h.hint)
		}
	}
}

// due reports whether a hint last given at *last is due again, and if so
// marks it given now.
func (a *serverLog) due(last *time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if !last.IsZero() && now.Sub(*last) < authHintEvery {
		return false
	}
	*last = now
	return true
}

// waitReady waits until ns accepts clients, for at most wait. It returns
// early with the server's fatal error, or when ctx ends (a signal during
// start-up).
func waitReady(ctx context.Context, ns *server.Server, fatal <-chan error, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		select {
		case err := <-fatal:
			return fmt.Errorf("the embedded server did not start: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if ns.ReadyForConnections(50 * time.Millisecond) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("local listener not ready after %s", wait)
		}
	}
}
