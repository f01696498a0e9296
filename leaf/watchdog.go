package leaf

import (
	"errors"
	"strings"
	"sync"
	"time"
)

// ErrLinkStuck reports an edge whose embedded server stopped trying to
// reach the hubs while the link was down.
var ErrLinkStuck = errors.New("the connection to the hubs stopped retrying (nats-server #7615)")

// attempts records when the embedded server last tried to reach a hub; it
// is fed by the server's log (each try is logged at debug level).
type attempts struct {
	mu   sync.Mutex
	last time.Time
}

// observe is the natslog Observe hook.
func (a *attempts) observe(format string) {
	if strings.HasPrefix(format, "Trying to connect as leafnode") || strings.HasPrefix(format, "Error trying to connect as leafnode") {
		a.mu.Lock()
		a.last = time.Now()
		a.mu.Unlock()
	}
}

func (a *attempts) lastAttempt() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

// linkStuck reports whether the link has been down, with no attempt to
// reach a hub, for longer than watchdog (0: never).
func linkStuck(now time.Time, l Link, lastAttempt time.Time, watchdog time.Duration) bool {
	if watchdog <= 0 || l.Connected {
		return false
	}
	quietSince := l.Since
	if lastAttempt.After(quietSince) {
		quietSince = lastAttempt
	}
	return now.Sub(quietSince) > watchdog
}

// checkStuck reports a stuck link once on s.stuck.
func (s *Server) checkStuck(now time.Time) {
	if s.stuckSent || !linkStuck(now, s.Link(), s.attempts.lastAttempt(), s.cfg.LinkWatchdog) {
		return
	}
	s.stuckSent = true
	s.log.Error("link down and no attempt to reach a hub: stopping so the supervisor restarts the edge (buffered data is on disk)",
		"quiet_for", s.cfg.LinkWatchdog.String())
	s.stuck <- ErrLinkStuck
}

// Stuck delivers ErrLinkStuck when the embedded server stopped trying to
// reach the hubs; the caller should stop the edge and start it again.
func (s *Server) Stuck() <-chan error { return s.stuck }
