// Package bench measures Tether against its plain-NATS twin, in the same
// run, on the same machine: edge->cloud publish throughput, cloud->edge
// request-reply latency and throughput, the static binary's size and an
// idle edge's RSS (TestBench); store-and-forward: backlog catch-up after
// a cut link, the edge's durability settings, and a mosquitto bridge
// (TestBenchStoreForward); and scale: many edge accounts and leaf links on
// a 3-hub cluster (TestBenchScale); named services: a cloud call by name
// through the hubs' router and the edge's gateway, with audit, against
// plain TLS request-reply and the floor of the path's shape (plain with
// do-nothing relay clients where the gateway and the router are, and with
// the hub's accounts and imports: relay_test.go), and discovery with 1,000
// edge accounts (TestBenchServices, services_test.go); an idle linked edge's RSS and CPU
// beside a plain nats-server leaf (TestBenchIdle, idle_test.go). Results go
// to docs/BENCHMARKS.md.
//
// The benchmarks are behind the build tag "bench" so that go test ./...
// stays fast. Run them (about 2.5 and 7 minutes on 2 cores) with:
//
//	go test -tags bench -run '^TestBench$' -count=1 -v -timeout 20m ./test/bench
//	go test -tags bench -run '^TestBenchStoreForward$' -count=1 -v -timeout 20m ./test/bench
//
// (-run TestBench runs them all, with TestBenchScale and TestBenchIdle.)
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
// TestBenchStoreForward (storefwd_test.go, mosquitto_test.go) runs three
// parts, each system on fresh servers per run; TETHER_BENCH_REPS applies,
// TETHER_BENCH_BACKLOG=<n> changes the backlog (default 200000),
// TETHER_BENCH_OUTAGE=<duration> its minimum outage (default 30s) and
// TETHER_BENCH_SF_MD=<file> writes its table as Markdown:
//   - backlog: the edge's link runs through internal/netproxy. tether is
//     hub.Server and leaf.Server (s2_fast, sync interval 1s, reconnect
//     250ms); plain is a hub nats-server (JetStream domain hub) and a leaf
//     nats-server (domain edge-e1, sync interval 1s, reconnect 250ms,
//     discovered URLs ignored so that it cannot dial around the proxy)
//     with an edge Limits file stream on telemetry.> and a hub file stream
//     sourcing it, created before the cut. A probe proves the path, the
//     proxy cuts the link, the edge stores 200k x 256 B JetStream publishes
//     (256 awaiting their PubAck), the link stays cut for 30 s in all (an
//     outage longer than nats-server's 10 s source health check), then
//     heals. The cloud stream's message count is polled every 5ms: heal ->
//     first message (bounded at 90 s), catch-up rate from the first to the
//     last message; then the cloud stream is read back to count lost and
//     duplicated payload indices.
//   - durability: an edge alone (Tether edge with an unreachable hub, or a
//     plain nats-server with JetStream), 256 B publishes, async with 256 in
//     flight and sync one by one, each run at most 100k / 20k messages or
//     4 s: Tether's sync_interval 1s vs sync_always, plain's default (2 min)
//     vs sync_always.
//   - mosquitto: two Debian mosquitto brokers (skipped with a message if
//     the programs are absent) on free loopback ports with generated
//     configs, the edge bridged to the cloud through a netproxy ("topic
//     telemetry/# out 1", cleansession false, default queue limits,
//     restart_timeout 1), mosquitto_pub -l at QoS 1 on the edge and
//     mosquitto_sub -q 1 on the cloud as child processes. Throughput: 100k x
//     128 B with at most 900 messages published and not yet received (the
//     bridge's default queue drops beyond 1000), vs Tether with JetStream
//     publishes and a core subscriber on the hub, at the same window and at
//     8 MiB. Offline backlog: cut, 100k x 128 B each acknowledged by the
//     edge (PUBACK counted from mosquitto_pub -d; JetStream PubAck for
//     Tether), heal, count distinct arrivals; mosquitto's run ends when a
//     probe published after the heal arrives behind the queue.
//
// TestBenchScale (scale_test.go, issue 3) runs three `tether hub`
// processes of the static binary in a cluster, creates 1,000 edges in the
// store (TETHER_SCALE_EDGES) and pushes each account JWT to all hubs with
// fleet.Push (latency until all three acknowledged), creates each
// edge's R3 command consumer as 'tether edge add --push' does
// (TETHER_SCALE_CONSUMERS=all|linked|none), then attaches 200 real leaf
// connections (TETHER_SCALE_LEAVES) at once: leaf.Server instances in
// TETHER_SCALE_PROCS (default 4) child processes, each the test binary
// re-executed with TETHER_SCALE_CHILD naming the bundles it runs. It
// reads the hubs' RSS, CPU and /varz, /accountz, the resolvers' jwt/
// directories and the JWT sizes, and checks that the CLOUD account JWT is
// byte-identical before and after the edges. Route, leafnode and monitor
// ports were free a moment before (the store and every hub must know them
// up front); TETHER_SCALE_MD=<file> writes its table as Markdown.
//
// Invariants: no fixed ports (port -1 / 127.0.0.1:0; mosquitto gets a port
// that was free a moment before and is retried if taken), no sleeps used
// for synchronization (the idle-RSS window and the backlog's outage are
// workloads), every loop is bounded in count and time, and every server
// and process is stopped by t.Cleanup.
package bench
