package leaf

import (
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// linkErrLog passes the embedded server's log on and hands each failure
// to reach a hub to note: nats-server only logs them (at error level for
// the first attempts, debug afterwards), with the hub and the error as
// arguments of the format below.
type linkErrLog struct {
	server.Logger
	note func(hub string, err error)
}

// connectErrPrefix starts nats-server's (v2.15.2) message for a failed
// dial of a leaf remote: "...remote server %q (attempt %v): %v".
const connectErrPrefix = "Error trying to connect as leafnode to remote server"

// Errorf logs and notes a failed dial.
func (l linkErrLog) Errorf(format string, v ...any) {
	l.Logger.Errorf(format, v...)
	l.observe(format, v)
}

// Debugf logs and notes a failed dial.
func (l linkErrLog) Debugf(format string, v ...any) {
	l.Logger.Debugf(format, v...)
	l.observe(format, v)
}

func (l linkErrLog) observe(format string, v []any) {
	if !strings.HasPrefix(format, connectErrPrefix) || len(v) < 3 {
		return
	}
	hub, _ := v[0].(string)
	if err, ok := v[2].(error); ok {
		l.note(hub, err)
	}
}

// noteLinkErr records why the last dial of a hub failed, for Link, and
// logs once (until it changes) a failure the proxy caused, naming the
// proxy, its refusal and what to do.
func (s *Server) noteLinkErr(hub string, err error) {
	msg := err.Error()
	hint, viaProxy := s.proxy.proxyHint(msg)
	if viaProxy {
		msg = "through proxy " + s.proxy.String() + " (from " + s.proxy.from + "): " + msg + ": " + hint
	}
	s.mu.Lock()
	changed := s.linkErr != msg
	s.linkErr = msg
	s.mu.Unlock()
	if changed && viaProxy {
		s.log.Error("the forward proxy did not open a tunnel to the hub", "proxy", s.proxy, "remote", hub, "err", err.Error(), "hint", hint)
	}
}
