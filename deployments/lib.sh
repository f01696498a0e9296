# shellcheck shell=bash
# Shared by up.sh, down.sh and e2e.sh; not meant to be run on its own.
#
# Settings (environment):
#   TETHER_FABRIC          store directory (default deployments/.fabric)
#   TETHER_HUB_STORE       the hubs' export of it (default $TETHER_FABRIC.hub)
#   TETHER_IMAGE           image tag (default tether:dev)
#   COMPOSE_PROJECT_NAME   compose project (default tether)
#   TETHER_UP_TIMEOUT      seconds up.sh waits for the cluster (default 90)

# shellcheck disable=SC2034 # the variables are for the sourcing scripts
deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$deploy_dir/.." && pwd)
build_dir="$deploy_dir/.build"
tether_bin="$build_dir/tether"

export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-tether}"
export TETHER_IMAGE="${TETHER_IMAGE:-tether:dev}"
TETHER_FABRIC="${TETHER_FABRIC:-$deploy_dir/.fabric}"
# compose and the hints need an absolute path.
[[ $TETHER_FABRIC == /* ]] || TETHER_FABRIC="$PWD/$TETHER_FABRIC"
export TETHER_FABRIC
# What the hubs mount: 'tether hub export' of the store, without the keys
# that mint identities or certificates.
TETHER_HUB_STORE="${TETHER_HUB_STORE:-$TETHER_FABRIC.hub}"
[[ $TETHER_HUB_STORE == /* ]] || TETHER_HUB_STORE="$PWD/$TETHER_HUB_STORE"
export TETHER_HUB_STORE

# The uid the hubs run as when the store belongs to root.
hub_uid_default=65532

hubs=(hub-1 hub-2 hub-3)

# Host ports: hub-N publishes N4222 (client), N7422 (leafnode), N7443
# (WebSocket) and N8222 (monitor) on 127.0.0.1.
client_port() { echo "${1#hub-}4222"; }
leaf_port() { echo "${1#hub-}7422"; }
ws_port() { echo "${1#hub-}7443"; }
monitor_port() { echo "${1#hub-}8222"; }

say() { printf '%s\n' "$*" >&2; }
die() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

# now_ms prints a monotonic-enough wall clock in milliseconds.
now_ms() {
	if [[ -n ${EPOCHREALTIME:-} ]]; then
		local t=${EPOCHREALTIME/[.,]/}
		echo $((10#$t / 1000))
	else
		echo $(($(date +%s) * 1000))
	fi
}

# secs MS prints milliseconds as seconds with one decimal.
secs() { printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100)); }

# compose runs docker compose v2 if present, else docker-compose v1.
compose() {
	if [[ -z "${_compose_cmd:-}" ]]; then
		if docker compose version >/dev/null 2>&1; then
			_compose_cmd="docker compose"
		elif command -v docker-compose >/dev/null 2>&1; then
			_compose_cmd="docker-compose"
		else
			die "neither 'docker compose' nor 'docker-compose' is installed"
		fi
	fi
	# shellcheck disable=SC2086 # _compose_cmd is one or two words
	$_compose_cmd -f "$deploy_dir/compose.yaml" "$@"
}

# http_get URL prints the body of a GET on loopback, with curl when
# available, else with bash's /dev/tcp. Fails on any error.
http_get() {
	local url=$1
	if command -v curl >/dev/null 2>&1; then
		curl -fsS --max-time 2 "$url"
		return
	fi
	local rest=${url#http://} hostport path
	hostport=${rest%%/*}
	path=/${rest#*/}
	exec 3<>"/dev/tcp/${hostport%:*}/${hostport#*:}" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3
	local status body
	IFS= read -r -t 2 status <&3 || { exec 3<&-; return 1; }
	body=$(timeout 2 cat <&3 | sed '1,/^\r\{0,1\}$/d')
	exec 3<&-
	[[ $status == *" 200 "* ]] || return 1
	printf '%s\n' "$body"
}

# wait_for SECONDS WHAT CMD... runs CMD every 200ms until it succeeds; after
# SECONDS it fails naming WHAT.
wait_for() {
	local secs=$1 what=$2
	shift 2
	local deadline=$(($(now_ms) + secs * 1000))
	until "$@"; do
		if (($(now_ms) > deadline)); then
			say "timed out after ${secs}s waiting for $what"
			return 1
		fi
		sleep 0.2
	done
}

# resolve_ids looks up the hubs' container ids with one docker call (compose
# v1 needs more than a second per 'ps'); container_id reads them. Ids survive
# docker stop/start, not a recreate: call resolve_ids again after compose up.
resolve_ids() {
	local svc id
	while read -r svc id; do
		[[ -n $svc ]] && printf -v "cid_${svc//-/_}" '%s' "$id"
	done < <(docker ps -a --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
		--format '{{.Label "com.docker.compose.service"}} {{.ID}}')
}

# container_id HUB prints the container id of a hub.
container_id() {
	local var="cid_${1//-/_}"
	if [[ -n ${!var:-} ]]; then
		echo "${!var}"
	else
		compose ps -q "$1" 2>/dev/null
	fi
}

# hub_running HUB succeeds when the hub's container is running and has not
# been restarted by Docker (a crash loop looks "running" half of the time).
hub_running() {
	local id
	id=$(container_id "$1")
	[[ -n $id ]] && [[ $(docker inspect -f '{{.State.Running}}/{{.State.Restarting}}/{{.RestartCount}}' "$id" 2>/dev/null) == true/false/0 ]]
}

# hub_routes HUB prints the names of the hubs HUB has routes to, sorted.
hub_routes() {
	http_get "http://127.0.0.1:$(monitor_port "$1")/routez" |
		grep -o '"remote_name": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/' | sort -u
}

# hub_clustered HUB [PEER...] succeeds when HUB answers on its monitor port,
# routes to every PEER (default: all hubs), has healthy JetStream (a meta
# leader it is current with) and holds the CLOUD stream TELEMETRY, the one
# edge telemetry lands in (the hubs create it once JetStream is up).
hub_clustered() {
	local h=$1 peers other
	shift
	local want=("${@:-${hubs[@]}}")
	peers=$(hub_routes "$h" 2>/dev/null) || return 1
	for other in "${want[@]}"; do
		[[ $other == "$h" ]] && continue
		grep -qx "$other" <<<"$peers" || return 1
	done
	http_get "http://127.0.0.1:$(monitor_port "$h")/healthz" 2>/dev/null | grep -q '"ok"' || return 1
	[[ -n $(stream_msgs "$h") ]]
}

# stream_msgs HUB prints how many messages HUB's replica of the CLOUD stream
# TELEMETRY holds, or nothing when HUB has no such stream.
stream_msgs() {
	http_get "http://127.0.0.1:$(monitor_port "$1")/jsz?accounts=true&streams=true" 2>/dev/null |
		awk '/"name": *"TELEMETRY"/ { s = 1 } s && /"messages":/ { gsub(/[^0-9]/, ""); print; exit }'
}

# wait_clustered SECONDS HUB... waits until each HUB is clustered with the
# others; it fails at once, with the hub's log, if a hub's container stops.
wait_clustered() {
	local secs=$1 h n=0
	shift
	local set=("$@")
	local deadline=$(($(now_ms) + secs * 1000))
	resolve_ids
	for h in "${set[@]}"; do
		until hub_clustered "$h" "${set[@]}"; do
			# docker inspect is slow too: look every 2s.
			if ((++n % 10 == 0)) && ! hub_running "$h"; then
				say "$h is not running or keeps restarting; its last log lines:"
				docker logs --tail 30 "$(container_id "$h")" >&2 || true
				return 1
			fi
			if (($(now_ms) > deadline)); then
				say "timed out after ${secs}s waiting for $h to route to ${set[*]}, with JetStream healthy and the stream TELEMETRY"
				say "routes of $h: $(hub_routes "$h" 2>/dev/null | tr '\n' ' ')"
				docker logs --tail 30 "$(container_id "$h")" >&2 || true
				return 1
			fi
			sleep 0.2
		done
	done
}

# stat_uid PATH / stat_gid PATH print the owner of PATH (GNU or BSD stat).
stat_uid() { stat -c %u "$1" 2>/dev/null || stat -f %u "$1"; }
stat_gid() { stat -c %g "$1" 2>/dev/null || stat -f %g "$1"; }

# hub_user decides which uid:gid the hubs run as and exports TETHER_UID and
# TETHER_GID for compose. The hubs run as the owner of their export of the
# store, so its 0600 secrets stay 0600 and its 0700 directories stay closed
# to everyone else. An export written by root is handed to uid 65532, since
# a hub never runs as root; the store itself stays with its owner.
hub_user() {
	local owner
	owner=$(stat_uid "$TETHER_HUB_STORE")
	if [[ $owner == 0 || $owner == "$hub_uid_default" ]]; then
		[[ $(id -u) == 0 ]] || die "the hub store $TETHER_HUB_STORE belongs to uid $owner; run as root"
		export TETHER_UID=$hub_uid_default TETHER_GID=$hub_uid_default
	else
		export TETHER_UID=$owner TETHER_GID
		TETHER_GID=$(stat_gid "$TETHER_HUB_STORE")
	fi
	if [[ $(id -u) == 0 ]]; then
		chown -R "$TETHER_UID:$TETHER_GID" "$TETHER_HUB_STORE"
	fi
}
