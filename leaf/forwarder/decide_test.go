package forwarder

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/contract"
)

func TestHighWaterSkip(t *testing.T) {
	const origin = "o1"
	tests := []struct {
		name        string
		hw          contract.HighWater
		first, last uint64
		gapRisk     bool
		wantStart   uint64
		wantPurgeTo uint64
		wantPurge   bool
	}{
		{"cloud holds a prefix", contract.HighWater{Origin: origin, Seq: 7}, 5, 10, false, 8, 7, true},
		{"cloud holds exactly the first", contract.HighWater{Origin: origin, Seq: 5}, 5, 10, false, 6, 5, true},
		{"cloud holds all of it", contract.HighWater{Origin: origin, Seq: 10}, 5, 10, false, 11, 10, true},
		{"cloud mark beyond the buffer is capped at its last", contract.HighWater{Origin: origin, Seq: 99}, 5, 10, false, 11, 10, true},
		{"cloud mark below the buffer skips nothing", contract.HighWater{Origin: origin, Seq: 4}, 5, 10, false, 5, 0, false},
		{"nothing in the cloud", contract.HighWater{Origin: origin, Seq: 0}, 1, 10, false, 1, 0, false},
		{"another incarnation of the buffer", contract.HighWater{Origin: "o0", Seq: 7}, 5, 10, false, 5, 0, false},
		{"no origin known to the cloud", contract.HighWater{Seq: 7}, 5, 10, false, 5, 0, false},
		{"cloud error", contract.HighWater{Origin: origin, Seq: 7, Error: "stream unavailable"}, 5, 10, false, 5, 0, false},
		// Ordering across a gap: with per-message PubAcks a later message
		// may be in the cloud while an earlier one is not; skipping to the
		// mark would lose the earlier one.
		{"gap risk: mark not trusted", contract.HighWater{Origin: origin, Seq: 7}, 5, 10, true, 5, 0, false},
		{"gap risk: mark past the buffer not trusted", contract.HighWater{Origin: origin, Seq: 99}, 5, 10, true, 5, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start, purgeTo, purge := highWaterSkip(tc.hw, origin, tc.first, tc.last, tc.gapRisk)
			if start != tc.wantStart || purgeTo != tc.wantPurgeTo || purge != tc.wantPurge {
				t.Errorf("highWaterSkip(%+v, first %d, last %d, gap risk %v) = start %d, purge to %d (%v); want start %d, purge to %d (%v)",
					tc.hw, tc.first, tc.last, tc.gapRisk, start, purgeTo, purge, tc.wantStart, tc.wantPurgeTo, tc.wantPurge)
			}
		})
	}
}

func TestAfterFirst(t *testing.T) {
	tests := []struct {
		name                string
		noBatch, duplicate  bool
		batches, risk, dups bool
	}{
		{"new message, batches allowed: batch", false, false, true, false, false},
		{"duplicate: per-message until the cloud stores a new one, gap risk", false, true, false, true, true},
		{"cloud refuses batches: per-message for good, gap risk", true, false, false, true, false},
		{"cloud refuses batches, duplicate", true, true, false, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, r, d := afterFirst(tc.noBatch, tc.duplicate)
			if b != tc.batches || r != tc.risk || d != tc.dups {
				t.Errorf("afterFirst(noBatch %v, duplicate %v) = batches %v, gap risk %v, dups %v; want %v, %v, %v",
					tc.noBatch, tc.duplicate, b, r, d, tc.batches, tc.risk, tc.dups)
			}
		})
	}
}

// TestAckPrefix plays PubAck events as collect sees them and checks the
// purges they cause: "ack N" (the PubAck of buffer sequence N, in send
// order), "drain" (the pipeline ran dry) and "fail" (a refusal or link
// loss: the confirmed prefix is purged and nothing after it).
func TestAckPrefix(t *testing.T) {
	acks := func(from, to uint64) []string {
		var ev []string
		for s := from; s <= to; s++ {
			ev = append(ev, fmt.Sprint("ack ", s))
		}
		return ev
	}
	cat := func(parts ...[]string) []string {
		var all []string
		for _, p := range parts {
			all = append(all, p...)
		}
		return all
	}
	tests := []struct {
		name   string
		events []string
		want   []string // purges: "to N (n)"
	}{
		{"nothing confirmed, nothing purged", []string{"drain", "fail"}, nil},
		{"drain purges the confirmed prefix", cat(acks(1, 3), []string{"drain"}), []string{"to 3 (3)"}},
		{"purge every uplinkPurgeEvery", cat(acks(1, uplinkPurgeEvery+1), []string{"drain"}),
			[]string{fmt.Sprintf("to %d (%d)", uplinkPurgeEvery, uplinkPurgeEvery), fmt.Sprintf("to %d (1)", uplinkPurgeEvery+1)}},
		{"failure keeps the confirmed prefix only", cat(acks(10, 12), []string{"fail"}), []string{"to 12 (3)"}},
		{"failure after a drain purges nothing twice", cat(acks(1, 2), []string{"drain", "fail"}), []string{"to 2 (2)"}},
		{"sequences need not start at 1", cat(acks(100, 101), []string{"drain", "ack 102", "drain"}), []string{"to 101 (2)", "to 102 (1)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a ackPrefix
			var got []string
			flush := func() {
				if seq, n, ok := a.take(); ok {
					got = append(got, fmt.Sprintf("to %d (%d)", seq, n))
				}
			}
		events:
			for _, ev := range tc.events {
				switch {
				case strings.HasPrefix(ev, "ack "):
					var seq uint64
					fmt.Sscan(strings.TrimPrefix(ev, "ack "), &seq)
					if a.ack(seq) {
						flush()
					}
				case ev == "drain":
					flush()
				case ev == "fail":
					flush()
					break events
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("purges = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestJudgeBatchReply(t *testing.T) {
	seqAt := func(n uint64) uint64 { return n + 100 }
	tests := []struct {
		name    string
		status  string
		data    string
		want    batchVerdict
		wantErr string // substring; "" for none
	}{
		{"flow ack confirms a prefix", "", `{"type":"ack","seq":40}`, batchVerdict{confirm: 40}, ""},
		{"PubAck confirms its count and ends the batch", "", `{"stream":"TELEMETRY","seq":9001,"count":57}`, batchVerdict{confirm: 57, ended: true}, ""},
		{"PubAck of an empty count ends the batch", "", `{"count":0}`, batchVerdict{ended: true}, ""},
		{"gap ends the session", "", `{"type":"gap","seq":12,"last_seq":10}`, batchVerdict{}, "expected message 10, got 12"},
		{"error names the buffered sequence", "", `{"type":"err","seq":3,"error":{"code":400,"description":"bad"}}`, batchVerdict{}, "message 3 (buffered 103): bad"},
		{"batches disabled turns them off", "", `{"error":{"code":400,"err_code":10205,"description":"batch publish is disabled"}}`, batchVerdict{noBatch: true}, "batch publish is disabled (10205)"},
		{"other refusal keeps batches", "", `{"error":{"code":503,"err_code":10077,"description":"no space"}}`, batchVerdict{}, "no space (10077)"},
		{"no responders", "503", ``, batchVerdict{}, "no responders"},
		{"unreadable answer", "", `not json`, batchVerdict{}, "cloud answer"},
		{"unknown type", "", `{"type":"what"}`, batchVerdict{}, `unknown type "what"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := judgeBatchReply(tc.status, []byte(tc.data), seqAt)
			if got != tc.want {
				t.Errorf("verdict = %+v, want %+v", got, tc.want)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestBatchConfirmed(t *testing.T) {
	tests := []struct {
		name        string
		acked, sent int
		n           uint64
		want        int
	}{
		{"advances", 10, 50, 30, 30},
		{"never goes back (late flow ack)", 30, 50, 20, 30},
		{"never beyond what was sent", 10, 50, 80, 50},
		{"zero is no news", 5, 50, 0, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := batchConfirmed(tc.acked, tc.sent, tc.n); got != tc.want {
				t.Errorf("batchConfirmed(acked %d, sent %d, n %d) = %d, want %d", tc.acked, tc.sent, tc.n, got, tc.want)
			}
		})
	}
}

func TestBatchPurge(t *testing.T) {
	// Buffer sequences of a batch sent after a high-water skip: 7, 8, 9, 10.
	seqs := []uint64{7, 8, 9, 10}
	tests := []struct {
		name          string
		acked, purged int
		wantSeq       uint64
		wantN         int
		wantOK        bool
	}{
		{"nothing confirmed", 0, 0, 0, 0, false},
		{"first two confirmed", 2, 0, 8, 2, true},
		{"more confirmed since the last purge", 4, 2, 10, 2, true},
		{"all purged already", 4, 4, 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq, n, ok := batchPurge(seqs, tc.acked, tc.purged)
			if seq != tc.wantSeq || n != tc.wantN || ok != tc.wantOK {
				t.Errorf("batchPurge(acked %d, purged %d) = to %d, %d messages (%v); want to %d, %d (%v)",
					tc.acked, tc.purged, seq, n, ok, tc.wantSeq, tc.wantN, tc.wantOK)
			}
		})
	}
}

func TestBatchWindowFull(t *testing.T) {
	tests := []struct {
		name           string
		inFlight, flow int
		bytes, limit   int64
		want           bool
	}{
		{"room", 10, 10, 100, 1000, false},
		{"message window reached", fastBatchWindow, 100, 0, 1 << 30, true},
		{"bytes over the pace but under two flows: may send", 19, 10, 5000, 1000, false},
		{"bytes over the pace beyond two flows: full", 20, 10, 5000, 1000, true},
		{"two flows but bytes under the pace", 20, 10, 999, 1000, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := batchWindowFull(tc.inFlight, tc.flow, tc.bytes, tc.limit); got != tc.want {
				t.Errorf("batchWindowFull(%d in flight, flow %d, %d bytes, limit %d) = %v, want %v",
					tc.inFlight, tc.flow, tc.bytes, tc.limit, got, tc.want)
			}
		})
	}
}

func TestOutboundHeader(t *testing.T) {
	site := nats.Header{
		"App":                  {"a", "b"},
		"Nats-Msg-Id":          {"site-chosen"},
		"nats-expected-stream": {"X"},
		"Nats-TTL":             {"1s"},
		"Tether-Edge":          {"other-edge"},
		"tether-seq":           {"1"},
		"Tether-Origin":        {"forged"},
		"Natsy":                {"kept"},
	}
	h := outboundHeader(site, "edge1:o1:5:tag", "edge1", "o1", "5")
	want := map[string][]string{
		"App":         {"a", "b"},
		"Natsy":       {"kept"},
		nats.MsgIdHdr: {"edge1:o1:5:tag"},
		HeaderEdge:    {"edge1"},
		HeaderSeq:     {"5"},
		HeaderOrigin:  {"o1"},
	}
	if fmt.Sprint(map[string][]string(h)) != fmt.Sprint(want) {
		t.Errorf("outbound header = %v, want %v", h, want)
	}
}

func TestForwarderOwned(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"Nats-Msg-Id", true}, {"nats-expected-last-sequence", true}, {"NATS-TTL", true},
		{"Tether-Edge", true}, {"tether-anything", true},
		{"App", false}, {"Nats", false}, {"Natsy", false}, {"X-Tether-Edge", false}, {"", false},
	}
	for _, tc := range tests {
		t.Run(tc.header, func(t *testing.T) {
			if got := forwarderOwned(tc.header); got != tc.want {
				t.Errorf("forwarderOwned(%q) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
}

func TestMsgIDs(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	ids := msgIDs{prefix: "edge1:o1:", key: key}
	format := regexp.MustCompile(`^edge1:o1:42:[A-Za-z0-9_-]{16}$`)
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"stable across resends", ids.id(42), ids.id(42), true},
		{"differs by sequence", ids.id(42), ids.id(43), false},
		{"differs by key: another edge cannot forge it",
			ids.id(42), msgIDs{prefix: "edge1:o1:", key: []byte("fedcba9876543210fedcba9876543210")}.id(42), false},
		{"differs by origin", ids.id(42), msgIDs{prefix: "edge1:o2:", key: key}.id(42), false},
	}
	if got := ids.id(42); !format.MatchString(got) {
		t.Errorf("id(42) = %q, want <edge>:<origin>:<seq>:<16-char tag> matching %s", got, format)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.a == tc.b) != tc.same {
				t.Errorf("ids %q and %q: equal = %v, want %v", tc.a, tc.b, tc.a == tc.b, tc.same)
			}
		})
	}
	// The tag covers origin and sequence: another edge's tag cannot be
	// moved onto a different sequence.
	tag := ids.id(42)[strings.LastIndexByte(ids.id(42), ':'):]
	if strings.HasSuffix(ids.id(43), tag) {
		t.Errorf("ids of sequences 42 and 43 share the tag %q", tag)
	}
}

func TestUplinkSubject(t *testing.T) {
	for _, tc := range []struct{ in, send, invalid string }{
		{"telemetry.temp", "telemetry.temp", ""},
		{"svc.audit.x", "svc.audit.x", ""},
		{"telemetry.*", contract.QuarantineSubject, "telemetry.*"},
		{"telemetry.x.>", contract.QuarantineSubject, "telemetry.x.>"},
		{"telemetry..x", contract.QuarantineSubject, "telemetry..x"},
	} {
		send, invalid := uplinkSubject(tc.in)
		if send != tc.send || invalid != tc.invalid {
			t.Errorf("uplinkSubject(%q) = %q, %q; want %q, %q", tc.in, send, invalid, tc.send, tc.invalid)
		}
	}
}
