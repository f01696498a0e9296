package leaf

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tether-fabric/tether/internal/natslog"
)

// authHintEvery bounds how often the hint is repeated while the hubs keep
// refusing the link.
const authHintEvery = time.Minute

// authHintLogger is the embedded server's logger with one addition: when
// a hub refuses the leaf link with "Authorization Violation", the usual
// cause is that the hubs do not know the edge's account (an 'edge add'
// whose push failed, or a hub that never loaded it), and the log says how
// to fix that instead of only looping on the server's error.
type authHintLogger struct {
	*natslog.Logger
	log  *slog.Logger
	edge string

	mu   sync.Mutex
	last time.Time
}

func newAuthHintLogger(nl *natslog.Logger, log *slog.Logger, edge string) *authHintLogger {
	return &authHintLogger{Logger: nl, log: log, edge: edge}
}

// Errorf logs the server's error, then the hint when it is a refused link.
func (a *authHintLogger) Errorf(format string, v ...any) {
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
