// Package bench measures Tether against its plain-NATS twin, in the same
// run, on the same machine: edge->cloud publish throughput, cloud->edge
// request-reply latency and throughput, the static binary's size and an
// idle edge's RSS. Results go to docs/BENCHMARKS.md.
//
// The benchmark is behind the build tag "bench" so that go test ./... stays
// fast. Run it (about 2.5 minutes on 2 cores) with:
//
//	go test -tags bench -run TestBench -count=1 -v -timeout 20m ./test/bench
//
// Each measurement is repeated 3 times (TETHER_BENCH_REPS overrides) with
// Tether and plain NATS alternating, and the table of medians is printed at
// the end; TETHER_BENCH_MD=<file> also writes it as Markdown.
//
// Topologies, all with a TLS leafnode link on loopback and the same leaf
// compression (off, then s2_fast), run side by side in this process:
//   - tether: hub.Server (operator/JWT mode, JetStream) and leaf.Server. A
//     local client publishes telemetry.x on the edge; it is stored in the
//     edge's buffer stream and forwarded (PubAck per message) into the
//     CLOUD stream; a CLOUD user on the hub's TLS client port receives
//     edges.e1.telemetry.>. Requests on svc.echo come from a user of the
//     edge's own account on the hub.
//   - plain: the twin of the core path, two nats-servers from hand-written
//     server.Options, no auth, no JetStream, plain client ports; publisher
//     on the leaf (telemetry.x), subscriber on the hub (telemetry.>).
//   - plain-js: the twin of the durable path, what nats-server offers for
//     store-and-forward: an edge file stream on telemetry.> and a hub file
//     stream sourcing it across the link; arrival = stored in the hub
//     stream (polled every 10ms).
//   - plain-tls: plain with TLS required on the hub's client port, as on
//     a Tether hub, for request-reply only.
//
// Invariants: no fixed ports (port -1 / 127.0.0.1:0), no sleeps used for
// synchronization (the idle-RSS window is a measurement), every loop is
// bounded in count and time, and every server and process is stopped by
// t.Cleanup.
package bench
