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

// ApplyGroupStreams makes the CLOUD group telemetry streams what groups
// says (contract.GroupStream): each sources TELEMETRY filtered on its
// members' subjects and republishes what it stores on
// contract.GroupLiveSubject; it has TELEMETRY's replicas, age and size
// limits. A new stream takes what TELEMETRY holds of its members; a member
// that joins an existing stream is taken from then on, and one that leaves
// is purged from it, so a group's readers lose its history at once.
// Streams of groups no grant reads any more are deleted (only streams
// marked contract.GroupStreamMetadataKey: an operator's own stream named
// GROUP_x is left alone). It returns what changed, sorted by group.
func ApplyGroupStreams(ctx context.Context, js jetstream.JetStream, groups []policy.GroupStream) ([]GroupStreamChange, error) {
	tel, err := js.Stream(ctx, contract.TelemetryStream)
	if err != nil {
		return nil, fmt.Errorf("group streams: stream %s: %w", contract.TelemetryStream, err)
	}
	tcfg := tel.CachedInfo().Config
	want := map[string]bool{}
	var out []GroupStreamChange
	for _, g := range groups {
		want[contract.GroupStream(g.Group)] = true
		ch, err := applyGroupStream(ctx, js, tcfg, g)
		if err != nil {
			return out, fmt.Errorf("group stream %s: %w", contract.GroupStream(g.Group), err)
		}
		if ch.Created || len(ch.Joined) > 0 || len(ch.Left) > 0 {
			out = append(out, ch)
		}
	}
	names := js.StreamNames(ctx)
	var stale []string
	for n := range names.Name() {
		if strings.HasPrefix(n, contract.GroupStreamPrefix) && !want[n] {
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
		out = append(out, GroupStreamChange{Group: g, Deleted: true})
	}
	slices.SortFunc(out, func(a, b GroupStreamChange) int { return strings.Compare(a.Group, b.Group) })
	return out, nil
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
		RePublish:   &jetstream.RePublish{Source: ">", Destination: contract.GroupLiveSubject(g.Group)},
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
	ch := GroupStreamChange{Group: g.Group}
	edges := slices.Sorted(slices.Values(g.Edges))
	g.Edges = slices.Compact(edges)
	s, err := js.Stream(ctx, contract.GroupStream(g.Group))
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
	had := members(cur.Config)
	for _, e := range g.Edges {
		if !slices.Contains(had, e) {
			ch.Joined = append(ch.Joined, e)
		}
	}
	for _, e := range had {
		if !slices.Contains(g.Edges, e) {
			ch.Left = append(ch.Left, e)
		}
	}
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
	cfg := groupStreamConfig(tcfg, g, start)
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return ch, err
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
