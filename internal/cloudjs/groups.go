package cloudjs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/policy"
)

// GroupStreamChange is what ApplyGroupStreams did to one group's stream.
type GroupStreamChange struct {
	Group   string   `json:"group"`
	Stream  string   `json:"stream"`
	Created bool     `json:"created,omitempty"`
	Deleted bool     `json:"deleted,omitempty"`
	Joined  []string `json:"joined,omitempty"`
	Left    []string `json:"left,omitempty"`
}

// groupDedupWindow is a group stream's duplicate window when TELEMETRY
// has none: a member change restarts the stream's source a few messages
// early (see ApplyGroupStreams), and the edges' message ids drop the
// repeats.
const groupDedupWindow = 2 * time.Minute

// ApplyGroupStreams makes the CLOUD group streams what groups says.
//
// Telemetry (contract.GroupStream): each sources TELEMETRY filtered on its
// members' subjects and republishes what it stores below
// contract.GroupPrefix; it has TELEMETRY's replicas, age and size limits.
// A new stream takes what TELEMETRY holds of its members; a member that
// joins an existing stream is taken from then on, and one that leaves is
// purged from it, so a group's readers lose its history at once.
//
// Commands (contract.GroupCommandStream): its subjects are its members'
// contract.GroupCommandSubject, so a command for another edge finds no
// stream; COMMANDS sources it as edges.<edge>.cmd.>, and the edge's own
// command consumer delivers it. A group without members has no command
// stream.
//
// Streams of groups no grant names any more are deleted (only streams
// marked contract.GroupStreamMetadataKey: an operator's own stream named
// GROUP_x is left alone). It returns what changed, sorted by group.
func ApplyGroupStreams(ctx context.Context, js jetstream.JetStream, groups []policy.GroupStream) ([]GroupStreamChange, error) {
	tel, err := js.Stream(ctx, contract.TelemetryStream)
	if err != nil {
		return nil, fmt.Errorf("group streams: stream %s: %w", contract.TelemetryStream, err)
	}
	cmds, err := js.Stream(ctx, contract.CommandsStream)
	if err != nil {
		return nil, fmt.Errorf("group streams: stream %s: %w", contract.CommandsStream, err)
	}
	want := map[string]bool{}
	var out []GroupStreamChange
	var sources []*jetstream.StreamSource // of COMMANDS, from the group command streams
	for _, g := range groups {
		g.Edges = slices.Compact(slices.Sorted(slices.Values(g.Edges)))
		type apply func(context.Context, jetstream.JetStream, jetstream.StreamConfig, policy.GroupStream) (GroupStreamChange, error)
		for _, k := range []struct {
			on     bool
			stream string
			base   jetstream.StreamConfig
			apply  apply
		}{
			{g.Telemetry, contract.GroupStream(g.Group), tel.CachedInfo().Config, applyGroupStream},
			{g.Commands && len(g.Edges) > 0, contract.GroupCommandStream(g.Group), cmds.CachedInfo().Config, applyGroupCommandStream},
		} {
			if !k.on {
				continue
			}
			want[k.stream] = true
			ch, err := k.apply(ctx, js, k.base, g)
			if err != nil {
				return out, fmt.Errorf("group stream %s: %w", k.stream, err)
			}
			if ch.Created || len(ch.Joined) > 0 || len(ch.Left) > 0 {
				out = append(out, ch)
			}
		}
		if want[contract.GroupCommandStream(g.Group)] {
			sources = append(sources, commandSource(g.Group))
		}
	}
	if err := setCommandSources(ctx, js, cmds.CachedInfo().Config, sources); err != nil {
		return out, err
	}
	names := js.StreamNames(ctx)
	var stale []string
	for n := range names.Name() {
		if (strings.HasPrefix(n, contract.GroupStreamPrefix) || strings.HasPrefix(n, contract.GroupCommandStreamPrefix)) && !want[n] {
			stale = append(stale, n)
		}
	}
	if err := names.Err(); err != nil {
		return out, fmt.Errorf("group streams: list streams: %w", err)
	}
	for _, n := range stale {
		s, err := js.Stream(ctx, n)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("group stream %s: %w", n, err)
		}
		g := s.CachedInfo().Config.Metadata[contract.GroupStreamMetadataKey]
		if g == "" {
			continue // not the policy's
		}
		if err := js.DeleteStream(ctx, n); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return out, fmt.Errorf("group stream %s: delete: %w", n, err)
		}
		out = append(out, GroupStreamChange{Group: g, Stream: n, Deleted: true})
	}
	slices.SortFunc(out, func(a, b GroupStreamChange) int { return strings.Compare(a.Stream, b.Stream) })
	return out, nil
}

// commandSource is COMMANDS' source of group's command stream: its
// groups.<group>.edges.<edge>.cmd.> become edges.<edge>.cmd.>.
func commandSource(group string) *jetstream.StreamSource {
	return &jetstream.StreamSource{Name: contract.GroupCommandStream(group), SubjectTransforms: []jetstream.SubjectTransformConfig{{
		Source:      contract.GroupCommandSubject(group, "*", ">"),
		Destination: "edges.{{wildcard(1)}}.cmd.>",
	}}}
}

// setCommandSources makes COMMANDS source exactly the group command
// streams of sources (its other sources, if an operator added any, stay).
// A source that stays keeps its position.
func setCommandSources(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, sources []*jetstream.StreamSource) error {
	var next []*jetstream.StreamSource
	for _, s := range cfg.Sources {
		if !strings.HasPrefix(s.Name, contract.GroupCommandStreamPrefix) {
			next = append(next, s)
		}
	}
	next = append(next, sources...)
	want := cfg
	want.Sources = next
	if !differs(cfg, want) {
		return nil
	}
	cfg = want
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("stream %s: sources of the group command streams: %w", contract.CommandsStream, err)
	}
	return nil
}

// applyGroupCommandStream makes g's command stream take commands for its
// members: COMMANDS' limits, subjects one per member.
func applyGroupCommandStream(ctx context.Context, js jetstream.JetStream, ccfg jetstream.StreamConfig, g policy.GroupStream) (GroupStreamChange, error) {
	ch := GroupStreamChange{Group: g.Group, Stream: contract.GroupCommandStream(g.Group)}
	cfg := jetstream.StreamConfig{
		Name:        ch.Stream,
		Description: "Tether: commands for the edges of group " + g.Group + " (access policy); COMMANDS takes them",
		Storage:     jetstream.FileStorage,
		Replicas:    ccfg.Replicas,
		MaxAge:      ccfg.MaxAge,
		MaxBytes:    ccfg.MaxBytes,
		MaxMsgSize:  ccfg.MaxMsgSize,
		Duplicates:  ccfg.Duplicates,
		Discard:     jetstream.DiscardNew,
		Metadata:    map[string]string{contract.GroupStreamMetadataKey: g.Group},
	}
	for _, e := range g.Edges {
		cfg.Subjects = append(cfg.Subjects, contract.GroupCommandSubject(g.Group, e, ">"))
	}
	s, err := js.Stream(ctx, ch.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return ch, err
		}
		ch.Created, ch.Joined = true, g.Edges
		return ch, nil
	}
	if err != nil {
		return ch, err
	}
	var had []string
	for _, subj := range s.CachedInfo().Config.Subjects {
		if t := strings.Split(subj, "."); len(t) > 3 {
			had = append(had, t[3])
		}
	}
	ch.Joined, ch.Left = joinedLeft(had, g.Edges)
	if !differs(s.CachedInfo().Config, cfg) {
		return ch, nil
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return ch, err
	}
	return ch, nil
}

// differs reports whether the settings a group stream's want sets differ
// from cur's: a stream that is as it should be is not updated (an update
// is a proposal to the stream's replicas, at every apply and hub start).
func differs(cur, want jetstream.StreamConfig) bool {
	key := func(c jetstream.StreamConfig) string {
		s := fmt.Sprint(c.Subjects, c.Replicas, c.MaxAge, c.MaxBytes, c.MaxMsgSize, c.Duplicates, c.RePublish)
		for _, src := range c.Sources {
			s += fmt.Sprint(src.Name, src.OptStartSeq, src.SubjectTransforms)
		}
		return s
	}
	return key(cur) != key(want)
}

// joinedLeft returns the edges of now not in had, and those of had not in
// now.
func joinedLeft(had, now []string) (joined, left []string) {
	for _, e := range now {
		if !slices.Contains(had, e) {
			joined = append(joined, e)
		}
	}
	for _, e := range had {
		if !slices.Contains(now, e) {
			left = append(left, e)
		}
	}
	return joined, left
}

// groupStreamConfig is the configuration of g's stream, its source
// starting at TELEMETRY sequence start (0: all TELEMETRY holds).
func groupStreamConfig(tcfg jetstream.StreamConfig, g policy.GroupStream, start uint64) jetstream.StreamConfig {
	dedup := tcfg.Duplicates
	if dedup == 0 {
		dedup = groupDedupWindow
	}
	cfg := jetstream.StreamConfig{
		Name:        contract.GroupStream(g.Group),
		Description: "Tether: telemetry of the edges of group " + g.Group + " (access policy)",
		Storage:     jetstream.FileStorage,
		Replicas:    tcfg.Replicas,
		MaxAge:      tcfg.MaxAge,
		MaxBytes:    tcfg.MaxBytes,
		Duplicates:  dedup,
		Discard:     jetstream.DiscardOld,
		Metadata:    map[string]string{contract.GroupStreamMetadataKey: g.Group},
		// groups.<group>.edges.<edge>.telemetry.<subject>
		RePublish: &jetstream.RePublish{Source: ">", Destination: contract.GroupPrefix + g.Group + ".>"},
	}
	if len(g.Edges) == 0 {
		return cfg // no source at all: a source without filters would take every edge
	}
	src := &jetstream.StreamSource{Name: contract.TelemetryStream, OptStartSeq: start}
	for _, e := range g.Edges {
		subj := contract.CloudTelemetrySubject(e)
		src.SubjectTransforms = append(src.SubjectTransforms, jetstream.SubjectTransformConfig{Source: subj, Destination: subj})
	}
	cfg.Sources = []*jetstream.StreamSource{src}
	return cfg
}

// members returns the edges a group stream's configuration sources.
func members(cfg jetstream.StreamConfig) []string {
	var out []string
	for _, s := range cfg.Sources {
		for _, t := range s.SubjectTransforms {
			if e, ok := strings.CutPrefix(t.Source, "edges."); ok {
				out = append(out, strings.TrimSuffix(e, ".telemetry.>"))
			}
		}
	}
	slices.Sort(out)
	return out
}

func applyGroupStream(ctx context.Context, js jetstream.JetStream, tcfg jetstream.StreamConfig, g policy.GroupStream) (GroupStreamChange, error) {
	ch := GroupStreamChange{Group: g.Group, Stream: contract.GroupStream(g.Group)}
	s, err := js.Stream(ctx, ch.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, groupStreamConfig(tcfg, g, 0)); err != nil {
			return ch, err
		}
		ch.Created, ch.Joined = true, g.Edges
		return ch, nil
	}
	if err != nil {
		return ch, err
	}
	cur := s.CachedInfo()
	ch.Joined, ch.Left = joinedLeft(members(cur.Config), g.Edges)
	// The start of the source in force stays as it is when the members do
	// not change (the server keeps its position); a new member list is a
	// new source to the server, which would start it at TELEMETRY's first
	// message again: start it after the last message the stream took
	// instead. What the old source takes between that read and the update
	// comes again and is dropped by the duplicate window (the edges'
	// message ids).
	var start uint64
	if len(cur.Config.Sources) > 0 {
		start = cur.Config.Sources[0].OptStartSeq
	}
	if len(ch.Joined) > 0 || len(ch.Left) > 0 {
		if start, err = nextSourced(ctx, s); err != nil {
			return ch, err
		}
	}
	if cfg := groupStreamConfig(tcfg, g, start); differs(cur.Config, cfg) {
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return ch, err
		}
	}
	for _, e := range ch.Left {
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(contract.CloudTelemetrySubject(e))); err != nil {
			return ch, fmt.Errorf("purge edge %s: %w", e, err)
		}
	}
	return ch, nil
}

// nextSourced returns the TELEMETRY sequence after the one the group
// stream's last message came from, or 0 when it holds none.
func nextSourced(ctx context.Context, s jetstream.Stream) (uint64, error) {
	m, err := s.GetLastMsgForSubject(ctx, ">")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last message: %w", err)
	}
	// Nats-Stream-Source: <stream> <sequence> <filter> <transform> <origin>
	f := strings.Fields(m.Header.Get("Nats-Stream-Source"))
	if len(f) < 2 {
		return 0, fmt.Errorf("last message %d: no source sequence in %q", m.Sequence, m.Header.Get("Nats-Stream-Source"))
	}
	seq, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("last message %d: source sequence %q: %w", m.Sequence, f[1], err)
	}
	return seq + 1, nil
}
