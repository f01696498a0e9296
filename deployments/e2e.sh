#!/usr/bin/env bash
# e2e.sh is the opt-in end-to-end test of the compose deployment (Taskfile
# task e2e). It needs Go, curl (or bash's /dev/tcp) and a Docker engine with
# compose; it pulls nothing.
#
#   deployments/e2e.sh
#
# With a store of its own (deployments/.e2e/fabric) and the compose project
# tether-e2e it:
#  1. starts the three hubs with up.sh;
#  2. adds edge site-1 and pushes its account to all three hubs;
#  3. runs 'tether leaf' on this host with that bundle, proves that what is
#     published at the edge reaches a cloud subscriber on hub-1 and that the
#     edge's buffer drains into the CLOUD stream TELEMETRY;
#  4. stops the hub the leaf is attached to, publishes at the edge while the
#     link is down, and proves that the leaf re-attaches to another hub and
#     that the messages of the outage reach the cloud, first one first, and
#     are stored exactly once (timed);
#  5. restarts that hub and proves that it rejoins the cluster, catches up
#     its replica of the stream and serves the edge's traffic;
#  6. does 3. again over WebSocket-TLS;
#  7. tears everything down.
# Every wait is bounded; it exits non-zero on the first failure, with the
# logs that explain it.
#
# Settings: TETHER_E2E_KEEP=1 keeps the containers and files after a run;
# TETHER_E2E_FAILOVER_TIMEOUT (seconds, default 30) bounds the failover.
# Everything listens on 127.0.0.1 or on the compose private network, on the
# same host ports as up.sh: stop a running dev cloud first (down.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-tether-e2e}
export TETHER_FABRIC=${TETHER_FABRIC:-$here/.e2e/fabric}
source "$here/lib.sh"

e2e_dir="$deploy_dir/.e2e"
edge=site-1
failover_timeout=${TETHER_E2E_FAILOVER_TIMEOUT:-30}
outage_msgs=10
leaf_pid="" sub_pid="" leaf_log="" ok=""
published=0      # messages published at the edge, all runs of the leaf
leaf_published=0 # the same, since the running leaf started
t_start=$(now_ms)

step() { say "--- $*"; }

cleanup() {
	local rc=$?
	set +e
	[[ -n $sub_pid ]] && kill "$sub_pid" 2>/dev/null
	if [[ -n $leaf_pid ]]; then
		kill "$leaf_pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$leaf_pid" 2>/dev/null || break; sleep 0.2; done
		kill -9 "$leaf_pid" 2>/dev/null
	fi
	if [[ -z $ok ]]; then
		say ""
		say "=== e2e FAILED (exit $rc); diagnostics:"
		if [[ -n $leaf_log && -f $leaf_log ]]; then
			say "--- leaf log $leaf_log (last 40 lines)"
			tail -n 40 "$leaf_log" >&2
		fi
		for h in "${hubs[@]}"; do
			local id
			id=$(container_id "$h")
			[[ -n $id ]] || continue
			say "--- $h log (last 25 lines)"
			docker logs --tail 25 "$id" 2>&1 | sed "s/^/[$h] /" >&2
		done
	fi
	if [[ -n ${TETHER_E2E_KEEP:-} ]]; then
		say "kept: project $COMPOSE_PROJECT_NAME and $e2e_dir (remove: COMPOSE_PROJECT_NAME=$COMPOSE_PROJECT_NAME TETHER_FABRIC=$TETHER_FABRIC $deploy_dir/down.sh; rm -rf $e2e_dir)"
	else
		"$deploy_dir/down.sh" >/dev/null 2>&1 || say "down.sh failed; remove the project $COMPOSE_PROJECT_NAME by hand"
		rm -rf "$e2e_dir"
	fi
	[[ -n $ok ]] && say "=== e2e PASSED in $(secs $(($(now_ms) - t_start)))s"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# port_free PORT succeeds when nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# json_field NAME prints the first value of "NAME" in the JSON on stdin.
json_field() { grep -o "\"$1\": *[^,}]*" | head -n 1 | sed 's/^[^:]*: *//; s/^"//; s/"$//'; }

# leaf_status prints the leaf's status as JSON.
leaf_status() { "$tether_bin" leaf status --url "$leaf_url" --json 2>/dev/null; }

# leaf_hub prints the hub address (host:port) the leaf is attached to, or
# fails when the link is down.
leaf_hub() {
	local st
	st=$(leaf_status) || return 1
	[[ $(json_field connected <<<"$st") == true ]] || return 1
	json_field hub <<<"$st"
}

# hub_of_leaf_addr 127.0.0.1:27422 prints hub-2 (hub-N publishes N7422 and,
# for WebSocket, N7443).
hub_of_leaf_addr() {
	local port=${1##*:} h
	for h in "${hubs[@]}"; do
		[[ $port == "$(leaf_port "$h")" || $port == "$(ws_port "$h")" ]] && { echo "$h"; return; }
	done
	return 1
}

leaf_attached() { leaf_addr=$(leaf_hub); }

# attached_elsewhere OLD succeeds when the leaf is attached to a hub other
# than OLD, and sets new_hub.
attached_elsewhere() {
	local addr
	addr=$(leaf_hub) || return 1
	new_hub=$(hub_of_leaf_addr "$addr") || return 1
	[[ $new_hub != "$1" ]]
}

# buffer_drained succeeds when the leaf's buffer is empty and the cloud
# acknowledged every message published since the leaf started.
buffer_drained() {
	local st
	st=$(leaf_status) || return 1
	[[ $(json_field backlog_msgs <<<"$st") == 0 && $(json_field forwarded <<<"$st") == "$leaf_published" ]]
}

# wait_drained SECONDS waits for buffer_drained and says what it saw if not.
wait_drained() {
	wait_for "$1" "the edge buffer to drain into the cloud" buffer_drained ||
		die "the edge did not forward its $leaf_published message(s): $(leaf_status | tr -d '\n ' | grep -o '"buffer":{[^}]*}')"
}

# cloud_holds HUB succeeds when HUB's replica of the CLOUD stream TELEMETRY
# holds exactly the messages published at the edge: none lost, none twice.
cloud_holds() { [[ $(stream_msgs "$1") == "$published" ]]; }

wait_cloud_holds() {
	local h=$1 secs=$2
	wait_for "$secs" "$h's stream TELEMETRY to hold $published messages" cloud_holds "$h" ||
		die "$h's stream TELEMETRY holds $(stream_msgs "$h") messages, want $published (published at the edge)"
	say "    $h: stream TELEMETRY holds $published messages, as published"
}

# pub_edge PAYLOAD publishes PAYLOAD on telemetry.t at the edge.
pub_edge() {
	"$tether_bin" pub --server "$leaf_url" telemetry.t "$1" >/dev/null 2>>"$e2e_dir/pub.err" ||
		die "publish at the edge failed: $(tail -n 1 "$e2e_dir/pub.err")"
	published=$((published + 1)) leaf_published=$((leaf_published + 1))
}

# start_leaf LOG [FLAG...] runs tether leaf with the edge's bundle and data
# and waits until it listens (leaf_url) and is attached to a hub
# (attached_to).
start_leaf() {
	leaf_log=$1
	shift
	"$tether_bin" leaf --bundle "$e2e_dir/$edge.bundle" --data "$e2e_dir/leaf-data" \
		--listen 127.0.0.1:0 "$@" >/dev/null 2>"$leaf_log" &
	leaf_pid=$! leaf_url="" leaf_published=0
	wait_for 20 "tether leaf to listen" leaf_ready || die "tether leaf did not start"
	say "    leaf listens on $leaf_url"
	wait_for 20 "the leaf to attach to a hub" leaf_attached || die "the leaf did not attach to any hub"
	attached_to=$(hub_of_leaf_addr "$leaf_addr") || die "the leaf is attached to $leaf_addr, which is none of the hubs"
	say "    leaf attached to $attached_to ($leaf_addr)"
}

leaf_ready() {
	kill -0 "$leaf_pid" 2>/dev/null || die "tether leaf exited: $(tail -n 5 "$leaf_log")"
	leaf_url=$(grep -o 'msg="edge ready".* client=nats://[0-9.:]*' "$leaf_log" | sed 's/.*client=//') || return 1
	[[ -n $leaf_url ]]
}

# stop_leaf stops tether leaf with SIGTERM and waits for it, at most 15s.
stop_leaf() {
	kill "$leaf_pid"
	for _ in $(seq 75); do
		kill -0 "$leaf_pid" 2>/dev/null || break
		sleep 0.2
	done
	kill -0 "$leaf_pid" 2>/dev/null && die "tether leaf did not stop within 15s of SIGTERM"
	wait "$leaf_pid" || die "tether leaf exited with status $? on SIGTERM"
	leaf_pid=""
}

# start_sub HUB starts a cloud subscriber on edges.*.telemetry.> at HUB that exits after
# one message, and waits until it listens.
start_sub() {
	local h=$1
	sub_out="$e2e_dir/sub-$h.out" sub_err="$e2e_dir/sub-$h.err"
	"$tether_bin" sub --server "tls://127.0.0.1:$(client_port "$h")" \
		--creds "$TETHER_FABRIC/users/cloud.creds" --tlsca "$TETHER_FABRIC/pki/ca.pem" \
		'edges.*.telemetry.>' --count 1 >"$sub_out" 2>"$sub_err" &
	sub_pid=$!
	wait_for 10 "the cloud subscriber on $h" sub_listening || die "no cloud subscriber on $h: $(cat "$sub_err")"
}

sub_listening() {
	grep -q 'listening on' "$sub_err" && return 0
	kill -0 "$sub_pid" 2>/dev/null || die "the cloud subscriber exited: $(cat "$sub_err")"
	return 1
}

sub_done() { ! kill -0 "$sub_pid" 2>/dev/null; }

# sub_got PAYLOAD checks that the subscriber, now done, got PAYLOAD as
# edges.<edge>.telemetry.t.
sub_got() {
	wait "$sub_pid" || die "the cloud subscriber failed: $(cat "$sub_err")"
	sub_pid=""
	grep -qx "\[edges.$edge.telemetry.t\] $1" "$sub_out" ||
		die "the cloud got '$(cat "$sub_out")', want '[edges.$edge.telemetry.t] $1'"
	say "    cloud subscriber got: $(cat "$sub_out")"
}

# publish_until_received SECONDS publishes "hello" at the edge until the
# running subscriber got it.
publish_until_received() {
	local secs=$1 n=0
	local deadline=$(($(now_ms) + secs * 1000))
	until sub_done; do
		(($(now_ms) < deadline)) || die "nothing published at the edge reached the cloud subscriber within ${secs}s ($n tries)"
		pub_edge hello
		n=$((n + 1))
		sleep 0.1
	done
	sub_got hello
}

step "preflight"
for h in "${hubs[@]}"; do
	for p in $(client_port "$h") $(leaf_port "$h") $(ws_port "$h") $(monitor_port "$h"); do
		port_free "$p" || die "127.0.0.1:$p is in use (a dev cloud from up.sh? stop it with deployments/down.sh)"
	done
done
rm -rf "$e2e_dir"
mkdir -m 0700 "$e2e_dir"

step "up.sh (project $COMPOSE_PROJECT_NAME, store $TETHER_FABRIC)"
"$deploy_dir/up.sh" >"$e2e_dir/up.out"
resolve_ids

step "edge add $edge --push: every hub must take the account"
"$tether_bin" edge add "$edge" --dir "$TETHER_FABRIC" --out "$e2e_dir/$edge.bundle" \
	--push "tls://127.0.0.1:$(client_port hub-1)" | tee "$e2e_dir/push.out" >&2 ||
	die "edge add --push failed"
for h in "${hubs[@]}"; do
	grep -q "push to $h: ok" "$e2e_dir/push.out" || die "the push did not report $h as ok"
done
# Refresh the hubs' export (a hub that restarts then knows the edge from its
# own store too) and hand it to the hubs' uid (see README.md).
"$tether_bin" hub export --dir "$TETHER_FABRIC" --out "$TETHER_HUB_STORE" >&2
hub_user

step "tether leaf on this host (TLS)"
start_leaf "$e2e_dir/leaf.log"

step "edge -> cloud: telemetry.t at the edge, edges.*.telemetry.> on hub-1"
start_sub hub-1
publish_until_received 15
wait_drained 15
wait_cloud_holds hub-1 10

victim=$attached_to
survivor=""
for h in "${hubs[@]}"; do [[ $h != "$victim" ]] && { survivor=$h; break; }; done
step "failover: docker stop $victim (the leaf's hub), $outage_msgs messages published during the outage"
start_sub "$survivor"
t0=$(now_ms)
docker stop -t 30 "$(container_id "$victim")" >/dev/null
t_stopped=$(now_ms)
for i in $(seq 0 $((outage_msgs - 1))); do pub_edge "outage-$i"; done
t_published=$(now_ms)
new_hub=""
wait_for "$failover_timeout" "the leaf to re-attach to another hub" attached_elsewhere "$victim" ||
	die "the leaf did not re-attach to another hub within ${failover_timeout}s; status: $(leaf_status)"
t_relinked=$(now_ms)
say "    leaf re-attached to $new_hub"
wait_for "$failover_timeout" "the first outage message at the cloud subscriber" sub_done ||
	die "no message reached the cloud subscriber on $survivor within ${failover_timeout}s of the relink"
t_first=$(now_ms)
sub_got outage-0
wait_drained "$failover_timeout"
t_drained=$(now_ms)
wait_cloud_holds "$survivor" 10

step "restart $victim: it rejoins, catches up the stream and serves the edge"
docker start "$(container_id "$victim")" >/dev/null
t_restart=$(now_ms)
wait_clustered 60 "${hubs[@]}" || die "$victim did not rejoin the cluster"
t_rejoined=$(now_ms)
wait_cloud_holds "$victim" 30
t_caught_up=$(now_ms)
start_sub "$victim"
publish_until_received 15
wait_drained 15
leaf_hub >/dev/null || die "the leaf lost its link after $victim came back; status: $(leaf_status)"

step "the same edge over WebSocket-TLS (the published N7443 ports)"
stop_leaf
start_leaf "$e2e_dir/leaf-ws.log" --transport websocket
[[ $leaf_addr == *:?7443 ]] || die "the leaf attached to $leaf_addr, want a WebSocket port (N7443)"
start_sub "$attached_to"
publish_until_received 15
wait_drained 15
stop_leaf
for h in "${hubs[@]}"; do wait_cloud_holds "$h" 10; done

step "results"
cat <<EOF | tee "$e2e_dir/results.txt" >&2
    push reached:                         $(grep -c ': ok' "$e2e_dir/push.out") hubs
    leaf attached to $victim, after its stop to $new_hub
    docker stop $victim:                   $(secs $((t_stopped - t0)))s
    $outage_msgs publishes at the edge during the outage: $(secs $((t_published - t_stopped)))s
    stop -> leaf attached to $new_hub:      $(secs $((t_relinked - t0)))s
    stop -> first outage message at cloud: $(secs $((t_first - t0)))s ($(secs $((t_first - t_relinked)))s after the relink)
    stop -> edge buffer drained:           $(secs $((t_drained - t0)))s
    $victim restart -> clustered:           $(secs $((t_rejoined - t_restart)))s
    $victim restart -> stream caught up:    $(secs $((t_caught_up - t_restart)))s
    messages published at the edge: $published; in TELEMETRY on every hub: $published
EOF
ok=1
