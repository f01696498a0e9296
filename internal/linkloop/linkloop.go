// Package linkloop runs an edge's work while its link to the hubs is up:
// the forwarder's and the downlink's sessions. Invariant: a step runs only
// while linked reports the link up, and failures back off exponentially up
// to MaxBackoff, so a broken link costs no busy loop.
package linkloop

import (
	"context"
	"time"
)

const (
	// MinBackoff is the wait after a first failure, MaxBackoff the longest.
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 5 * time.Second
	// downPoll is how often a down link is checked again.
	downPoll = 50 * time.Millisecond
)

// While calls step repeatedly while linked reports the link up, until ctx
// ends, backing off exponentially (up to MaxBackoff) after failures.
func While(ctx context.Context, linked func() bool, step func(context.Context) error) {
	backoff := MinBackoff
	for ctx.Err() == nil {
		if !linked() {
			if !Sleep(ctx, downPoll) {
				return
			}
			continue
		}
		if err := step(ctx); err != nil {
			if !Sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, MaxBackoff)
			continue
		}
		backoff = MinBackoff
	}
}

// Sleep waits d; it reports false if ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
