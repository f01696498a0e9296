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

// serverLog is the embedded server's logger with two additions:
//   - when a hub refuses the leaf link with "Authorization Violation", the
//     usual cause is that the hubs do not know the edge's account (an 'edge
//     add' whose push failed, or a hub that never loaded it), and the log
//     says how to fix that instead of only looping on the server's error;
//   - a fatal error of the server (it gave up starting, e.g. "Can't start
//     JetStream") is handed to Start, which fails at once with it instead
//     of waiting for a readiness that will never come.
type serverLog struct {
	*natslog.Logger
	log   *slog.Logger
	edge  string
	fatal chan error // first fatal error; buffered, never closed

	mu   sync.Mutex
	last time.Time
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

// Errorf logs the server's error, then the hint when it is a refused link.
func (a *serverLog) Errorf(format string, v ...any) {
	a.Logger.Errorf(format, v...)
	if !strings.Contains(format, "Leafnode Error") || !strings.Contains(fmt.Sprint(v...), "Authorization Violation") {
		return
	}
	a.mu.Lock()
	now := time.Now()
	due := a.last.IsZero() || now.Sub(a.last) >= authHintEvery
	if due {
		a.last = now
	}
	a.mu.Unlock()
	if due {
		a.log.Error(fmt.Sprintf("the hubs refused this edge's link: the hubs may not know this edge's account: push it with 'tether edge push %s' (on the operator's machine, with --dir and --hub), or check that the edge was not revoked or removed", a.edge))
	}
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
