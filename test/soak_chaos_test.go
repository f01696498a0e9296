package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// soakFaultKind is a kind of fault the soak injects.
type soakFaultKind int

const (
	faultCut         soakFaultKind = iota // an edge's link refused for a while
	faultFlap                             // several short cuts
	faultKill                             // SIGKILL an edge, restart it on its data
	faultStop                             // SIGSTOP an edge, SIGCONT later (T-A10)
	faultHub                              // shut a hub down, start it again
	faultDropReplies                      // the hubs' answers to an edge are lost
	soakFaultKinds
)

func (k soakFaultKind) String() string {
	return [...]string{"link cut", "link flap", "edge SIGKILL", "edge SIGSTOP", "hub down", "replies dropped"}[k]
}

// soakRange is a closed range of durations a fault draws from.
type soakRange struct{ lo, hi time.Duration }

// soakTiming sizes the faults of one tier.
type soakTiming struct {
	gap         soakRange // between the starts of two faults
	cut         soakRange
	flapCycles  int       // cuts in a flap: 3 up to this many
	flapPhase   soakRange // each down and each up phase of a flap
	killDown    soakRange // from SIGKILL to the restart
	stop        soakRange
	hubDown     soakRange
	dropReplies soakRange
	// recovery bounds the wait, after a heal, for the edge to catch up
	// (or the hub to be healthy again); past it the soak fails.
	recovery time.Duration
}

var (
	// soakCI keeps every fault short: the whole test fits in about a minute.
	soakCI = soakTiming{
		gap: soakRange{300 * time.Millisecond, time.Second},
		cut: soakRange{time.Second, 3 * time.Second}, flapCycles: 3,
		flapPhase: soakRange{300 * time.Millisecond, time.Second},
		killDown:  soakRange{0, time.Second}, stop: soakRange{time.Second, 3 * time.Second},
		hubDown: soakRange{2 * time.Second, 4 * time.Second}, dropReplies: soakRange{2 * time.Second, 4 * time.Second},
		recovery: time.Minute,
	}
	// soakFull has cuts longer than nats-server's 10 s source health
	// check and pauses up to the hubs' ping budget (30 s).
	soakFull = soakTiming{
		gap: soakRange{time.Second, 8 * time.Second},
		cut: soakRange{time.Second, 40 * time.Second}, flapCycles: 10,
		flapPhase: soakRange{500 * time.Millisecond, 5 * time.Second},
		killDown:  soakRange{0, 10 * time.Second}, stop: soakRange{time.Second, 30 * time.Second},
		hubDown: soakRange{5 * time.Second, 30 * time.Second}, dropReplies: soakRange{2 * time.Second, 20 * time.Second},
		recovery: 2 * time.Minute,
	}
)

// soakStats counts one kind of fault.
type soakStats struct {
	injected    int
	maxRecovery time.Duration // longest heal-to-recovered
	worst       string        // which injection that was
}

// soak is the chaos run: the cluster, the edges and what was injected.
// Everything but the producers runs on the test goroutine.
type soak struct {
	cfg   soakConfig
	rng   *rand.Rand // drawn from the chaos loop only, so a seed replays its choices
	start time.Time
	hubs  []*hub.Server
	edges []*soakEdge
	busy  map[string]bool // edges and "hubs" with a fault in progress
	stats [soakFaultKinds]soakStats
	mem   *soakMem // sampled during the chaos
}

// soakAction is one step of a fault, at an offset from its start.
type soakAction struct {
	at time.Duration
	do func(t *testing.T)
}

// soakFault is a fault in progress: its actions, the last of which heals
// it, then a wait until its target has recovered.
type soakFault struct {
	kind      soakFaultKind
	target    string
	started   time.Time
	actions   []soakAction
	next      int
	healed    time.Time
	recovered func(healed time.Time) error // nil once the target is back to normal
	lastPoll  time.Time
	lastErr   error
	detail    string // what the target said about its recovery, if anything
}

func (s *soak) draw(r soakRange) time.Duration {
	return r.lo + time.Duration(s.rng.Int64N(int64(r.hi-r.lo)+1))
}

func (s *soak) elapsed() string { return time.Since(s.start).Round(100 * time.Millisecond).String() }

// chaos injects faults until the run's duration has passed (and, in the
// CI tier, every kind of fault once), then waits until every fault is
// healed and its target recovered. Meanwhile it samples memory.
func (s *soak) chaos(t *testing.T) {
	s.mem = newSoakMem(s.cfg.duration)
	var plan []soakFaultKind
	if !s.cfg.full {
		// Every kind at least once, in an order drawn from the seed.
		for k := range soakFaultKinds {
			plan = append(plan, k)
		}
		s.rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	}
	deadline := time.Now().Add(s.cfg.duration)
	next := time.Now().Add(s.draw(s.cfg.timing.gap))
	var active []*soakFault
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for len(active) > 0 || len(plan) > 0 || time.Now().Before(deadline) {
		<-tick.C
		s.checkRunning(t)
		s.mem.sample(s.edges)
		now := time.Now()
		if !now.Before(next) && (len(plan) > 0 || now.Before(deadline)) {
			kind := s.pick(plan)
			if f := s.inject(t, kind); f != nil {
				if len(plan) > 0 {
					plan = plan[1:]
				}
				active = append(active, f)
				next = time.Now().Add(s.draw(s.cfg.timing.gap))
			}
		}
		active = slices.DeleteFunc(active, func(f *soakFault) bool { return s.advance(t, f) })
	}
}

// pick returns the next kind of fault: the plan's head, else a random kind
// (an edge fault when a hub fault is in progress).
func (s *soak) pick(plan []soakFaultKind) soakFaultKind {
	if len(plan) > 0 {
		return plan[0]
	}
	k := soakFaultKind(s.rng.IntN(int(soakFaultKinds)))
	for k == faultHub && s.busy["hubs"] {
		k = soakFaultKind(s.rng.IntN(int(soakFaultKinds)))
	}
	return k
}

// inject starts a fault of kind on a free target; nil when there is none
// (every edge busy, or a hub already down).
func (s *soak) inject(t *testing.T, kind soakFaultKind) *soakFault {
	if kind == faultHub {
		if s.busy["hubs"] {
			return nil
		}
		return s.hubFault(t, s.rng.IntN(len(s.hubs)))
	}
	var free []*soakEdge
	for _, e := range s.edges {
		if !s.busy[e.name] {
			free = append(free, e)
		}
	}
	if len(free) == 0 {
		return nil
	}
	return s.edgeFault(t, kind, free[s.rng.IntN(len(free))])
}

// edgeFault plans a fault of kind on e; it counts as recovered once
// everything the edge buffered before the heal has reached the cloud.
func (s *soak) edgeFault(t *testing.T, kind soakFaultKind, e *soakEdge) *soakFault {
	tm := s.cfg.timing
	setLink := func(m netproxy.Mode) func(*testing.T) { return func(*testing.T) { e.setLink(m) } }
	var actions []soakAction
	var d time.Duration
	switch kind {
	case faultCut:
		d = s.draw(tm.cut)
		actions = []soakAction{{0, setLink(netproxy.Cut)}, {d, setLink(netproxy.Pass)}}
	case faultDropReplies:
		d = s.draw(tm.dropReplies)
		actions = []soakAction{{0, setLink(netproxy.DropReplies)}, {d, setLink(netproxy.Pass)}}
	case faultFlap:
		for range 3 + s.rng.IntN(tm.flapCycles-2) {
			actions = append(actions, soakAction{d, setLink(netproxy.Cut)})
			d += s.draw(tm.flapPhase)
			actions = append(actions, soakAction{d, setLink(netproxy.Pass)})
			d += s.draw(tm.flapPhase)
		}
		d = actions[len(actions)-1].at
	case faultKill:
		d = s.draw(tm.killDown)
		actions = []soakAction{{0, e.kill}, {d, e.start}}
	case faultStop:
		d = s.draw(tm.stop)
		actions = []soakAction{
			{0, func(t *testing.T) { e.signal(t, syscall.SIGSTOP) }},
			{d, func(t *testing.T) { e.signal(t, syscall.SIGCONT) }},
		}
	}
	t.Logf("%7s %s: %s for %s (%d actions)", s.elapsed(), e.name, kind, d.Round(time.Millisecond), len(actions))
	s.busy[e.name] = true
	s.stats[kind].injected++
	f := &soakFault{kind: kind, target: e.name, started: time.Now(), actions: actions}
	f.recovered = func(healed time.Time) error {
		st, err := e.leaf.status()
		if err != nil {
			return err
		}
		if b := st.Buffer; b.LastErrorAt.After(healed) {
			f.detail = fmt.Sprintf("the forwarder's last error, %s after the heal: %s",
				b.LastErrorAt.Sub(healed).Round(time.Millisecond), b.LastError)
		}
		return soakCaughtUp(st, healed)
	}
	return f
}

// soakCaughtUp reports whether an edge whose fault healed at healed has
// forwarded everything it buffered before then.
func soakCaughtUp(st leaf.Status, healed time.Time) error {
	b := st.Buffer
	switch {
	case !st.Link.Connected:
		return fmt.Errorf("link down (backlog %d, last error %q)", b.BacklogMsgs, b.LastError)
	case b.BacklogMsgs > 0 && b.Oldest() >= time.Since(healed):
		return fmt.Errorf("backlog %d messages, oldest %s (last error %q)", b.BacklogMsgs, b.OldestAge, b.LastError)
	}
	return nil
}

// hubFault plans shutting hub i down and starting it again; it counts as
// recovered once the hub reports itself healthy (JetStream current).
func (s *soak) hubFault(t *testing.T, i int) *soakFault {
	d := s.draw(s.cfg.timing.hubDown)
	name := s.hubs[i].Config().Name
	t.Logf("%7s %s: %s for %s", s.elapsed(), name, faultHub, d.Round(time.Millisecond))
	s.busy["hubs"] = true
	s.stats[faultHub].injected++
	return &soakFault{kind: faultHub, target: name, started: time.Now(),
		actions: []soakAction{
			{0, func(t *testing.T) {
				if err := s.hubs[i].Shutdown(context.Background()); err != nil {
					t.Fatalf("shut down %s: %v", name, err)
				}
			}},
			{d, func(t *testing.T) { s.hubs[i] = tethertest.RestartHub(t, s.hubs[i], nil) }},
		},
		recovered: func(time.Time) error {
			if hs := s.hubs[i].NATS().Healthz(nil); hs.Status != "ok" {
				return fmt.Errorf("%s: %s", hs.Status, hs.Error)
			}
			return nil
		}}
}

// advance runs f's actions that are due and, once it is healed, checks
// (at most every 250ms) whether its target recovered; it reports whether
// f is over. A target that does not recover within the tier's bound
// fails the soak.
func (s *soak) advance(t *testing.T, f *soakFault) bool {
	for f.next < len(f.actions) && time.Since(f.started) >= f.actions[f.next].at {
		if f.next == len(f.actions)-1 {
			// The heal starts here: recovery includes restarting a
			// process (edge or hub).
			f.healed = time.Now()
		}
		f.actions[f.next].do(t)
		f.next++
	}
	if f.next < len(f.actions) || time.Since(f.lastPoll) < 250*time.Millisecond {
		return false
	}
	f.lastPoll = time.Now()
	if f.lastErr = f.recovered(f.healed); f.lastErr != nil {
		if time.Since(f.healed) > s.cfg.timing.recovery {
			t.Fatalf("seed %d: %s on %s (injected at %s): not recovered %s after the heal: %v",
				s.cfg.seed, f.kind, f.target, f.started.Sub(s.start).Round(time.Millisecond), s.cfg.timing.recovery, f.lastErr)
		}
		return false
	}
	took := time.Since(f.healed)
	st := &s.stats[f.kind]
	if took > st.maxRecovery {
		st.maxRecovery = took
		st.worst = fmt.Sprintf("%s at %s", f.target, f.started.Sub(s.start).Round(time.Second))
	}
	if f.kind == faultHub {
		delete(s.busy, "hubs")
	} else {
		delete(s.busy, f.target)
	}
	if f.detail != "" {
		f.detail = "; " + f.detail
	}
	t.Logf("%7s %s: recovered %s after the %s healed%s", s.elapsed(), f.target, took.Round(time.Millisecond), f.kind, f.detail)
	return true
}

// checkRunning fails the soak if an edge process ended on its own, but
// for its link watchdog: nats-server's connect loop can stop retrying
// (#7615; the hub-down faults provoke it), and the edge then stops for
// its supervisor to restart it (docs/ARCHITECTURE.md, "Link watchdog").
// The soak does what a supervisor does: it restarts the edge on its data,
// and says so; nothing may be lost either way.
func (s *soak) checkRunning(t *testing.T) {
	t.Helper()
	for _, e := range s.edges {
		if e.leaf == nil || !e.leaf.proc.exited() {
			continue
		}
		if !strings.Contains(e.leaf.proc.stderr.String(), leafWatchdogStop) {
			t.Fatalf("seed %d: %s exited on its own at %s: %v", s.cfg.seed, e.leaf.proc.name, s.elapsed(), e.leaf.proc.err)
		}
		t.Logf("%7s %s: its link watchdog stopped it (nats-server #7615): restarted on its data, as a supervisor does", s.elapsed(), e.leaf.proc.name)
		e.watchdogStops++
		e.start(t)
	}
}

// leafWatchdogStop is what 'tether leaf' logs when its link watchdog
// stops it (leaf/watchdog.go).
const leafWatchdogStop = "link down and no attempt to reach a hub: stopping so the supervisor restarts the edge"

// summary is one line per fault kind for the soak's report, and the
// longest catch-up of an edge after any heal.
func (s *soak) summary() string {
	var b strings.Builder
	var worst soakStats
	var worstKind soakFaultKind
	for k, st := range s.stats {
		if soakFaultKind(k) != faultHub && st.maxRecovery > worst.maxRecovery {
			worst, worstKind = st, soakFaultKind(k)
		}
	}
	fmt.Fprintf(&b, "max catch-up of an edge after a heal: %s (%s, %s); faults injected:",
		worst.maxRecovery.Round(time.Millisecond), worstKind, worst.worst)
	for k, st := range s.stats {
		if st.injected == 0 {
			fmt.Fprintf(&b, "\n  %-16s 0", soakFaultKind(k))
			continue
		}
		what := "catch-up"
		if soakFaultKind(k) == faultHub {
			what = "healthy again"
		}
		fmt.Fprintf(&b, "\n  %-16s %3d, max %s after the heal %s (%s)", soakFaultKind(k), st.injected, what,
			st.maxRecovery.Round(time.Millisecond), st.worst)
	}
	return b.String()
}
