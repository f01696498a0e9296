package leaf

import (
	"testing"
	"time"
)

func TestLinkStuck(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	const wd = time.Minute
	for _, tc := range []struct {
		name     string
		link     Link
		attempt  time.Time
		now      time.Time
		watchdog time.Duration
		want     bool
	}{
		{"linked", Link{Connected: true, Since: t0}, time.Time{}, t0.Add(time.Hour), wd, false},
		{"down, retrying", Link{Since: t0}, t0.Add(59 * time.Minute), t0.Add(time.Hour), wd, false},
		{"down, just went down", Link{Since: t0}, time.Time{}, t0.Add(30 * time.Second), wd, false},
		{"down, no attempt since", Link{Since: t0}, t0.Add(-time.Hour), t0.Add(61 * time.Second), wd, true},
		{"down, last attempt long ago", Link{Since: t0}, t0.Add(time.Minute), t0.Add(2*time.Minute + time.Second), wd, true},
		{"watchdog off", Link{Since: t0}, time.Time{}, t0.Add(24 * time.Hour), 0, false},
	} {
		if got := linkStuck(tc.now, tc.link, tc.attempt, tc.watchdog); got != tc.want {
			t.Errorf("%s: linkStuck = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestAttemptsObserved(t *testing.T) {
	var a attempts
	a.observe("Leafnode connection closed: %s")
	if !a.lastAttempt().IsZero() {
		t.Fatal("an unrelated log line counted as a connect attempt")
	}
	// nats-server's format strings (server/leafnode.go).
	a.observe("Trying to connect as leafnode to remote server on %q%s")
	if a.lastAttempt().IsZero() {
		t.Fatal("a connect attempt was not noticed")
	}
}
