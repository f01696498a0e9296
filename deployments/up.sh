#!/usr/bin/env bash
# up.sh starts the Tether cloud on this machine: three clustered hubs in
# containers, reachable on 127.0.0.1 only. Run it from anywhere; it is
# idempotent (a second run rebuilds, keeps the store and the data, and only
# recreates hubs whose image or settings changed).
#
#   deployments/up.sh            build, start, wait until clustered
#
# It builds deployments/.build/tether (static), the image tether:dev from
# deployments/Dockerfile, creates the store deployments/.fabric with
# 'tether init' when absent, starts deployments/compose.yaml and waits until
# every hub routes to the two others, with JetStream healthy and the CLOUD
# stream TELEMETRY in place.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

timeout_s=${TETHER_UP_TIMEOUT:-90}
t0=$(now_ms)

command -v go >/dev/null || die "go is needed to build tether"
docker version >/dev/null 2>&1 || die "cannot talk to the Docker engine (is it running, may you use it?)"

# 1. The binary: static, for the image; the same file serves the host on Linux.
version=$(git -C "$repo_dir" describe --tags --always --dirty 2>/dev/null || echo dev)
commit=$(git -C "$repo_dir" rev-parse HEAD 2>/dev/null || true)
ldflags="-s -w -X github.com/tether-fabric/tether/internal/buildinfo.Version=$version -X github.com/tether-fabric/tether/internal/buildinfo.Commit=$commit"
arch=$(docker version -f '{{.Server.Arch}}' 2>/dev/null || go env GOARCH)
image_ctx="$build_dir/image"
mkdir -p "$image_ctx/rootfs/data"
chmod 1777 "$image_ctx/rootfs/data"
say "building tether $version (linux/$arch, static)"
(cd "$repo_dir" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch \
	go build -trimpath -ldflags "$ldflags" -o "$image_ctx/tether" ./cmd/tether)
if [[ $(go env GOOS)/$(go env GOARCH) == linux/$arch ]]; then
	cp -f "$image_ctx/tether" "$tether_bin"
else
	(cd "$repo_dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tether_bin" ./cmd/tether)
fi

# 2. The image, FROM scratch around that binary.
say "building image $TETHER_IMAGE"
docker build -q -t "$TETHER_IMAGE" --build-arg "COMMIT=$commit" --build-arg "VERSION=$version" \
	-f "$deploy_dir/Dockerfile" "$image_ctx" >/dev/null

# 3. The store, once. Edges dial the published leafnode ports; the hub
# certificate also names the hubs as their peers (routes) see them.
hub_urls=() ws_urls=()
for h in "${hubs[@]}"; do
	hub_urls+=("tls://127.0.0.1:$(leaf_port "$h")")
	ws_urls+=("wss://127.0.0.1:$(ws_port "$h")")
done
if [[ ! -f $TETHER_FABRIC/fabric.json ]]; then
	say "creating the store $TETHER_FABRIC"
	"$tether_bin" init --dir "$TETHER_FABRIC" \
		--hub-url "$(IFS=,; echo "${hub_urls[*]}")" \
		--ws-url "$(IFS=,; echo "${ws_urls[*]}")" \
		--hub-host "hub-1,hub-2,hub-3,localhost,127.0.0.1" >&2
else
	say "using the store $TETHER_FABRIC"
fi

# 4. The hubs' share of the store, refreshed on every run (new edges, new
# enrollment keys), and who the hubs run as (see hub_user in lib.sh).
say "exporting the hubs' share of the store to $TETHER_HUB_STORE"
"$tether_bin" hub export --dir "$TETHER_FABRIC" --out "$TETHER_HUB_STORE" >&2
hub_user
say "hubs run as uid $TETHER_UID:$TETHER_GID"

# 5. Start and wait.
t_up=$(now_ms)
compose up -d >&2
# A hub Docker keeps restarting (say it could not read an account added as
# root before this run fixed the ownership) gets a fresh start; compose
# leaves it alone because its settings did not change.
resolve_ids
for h in "${hubs[@]}"; do
	id=$(container_id "$h")
	if [[ -n $id && $(docker inspect -f '{{.State.Restarting}}/{{.RestartCount}}' "$id") != false/0 ]]; then
		say "restarting $h, which kept crashing"
		docker restart "$id" >/dev/null
	fi
done
wait_clustered "$timeout_s" "${hubs[@]}" ||
	die "the hubs did not form a cluster (see above; more with docker ps -a and docker logs)"
t_done=$(now_ms)
say "cluster up: ${hubs[*]} route to each other, JetStream and the stream TELEMETRY ready ($(secs $((t_done - t_up)))s after compose up, $(secs $((t_done - t0)))s in all)"

rel_fabric=$TETHER_FABRIC
[[ $rel_fabric == "$repo_dir"/* ]] && rel_fabric=${rel_fabric#"$repo_dir"/}
rel_bin=${tether_bin#"$repo_dir"/}
cat <<EOF

Tether cloud is up (project $COMPOSE_PROJECT_NAME). From the repository root:

  # hubs, on 127.0.0.1           client  leafnode  websocket  monitor
  #   hub-1                      14222   17422     17443      18222
  #   hub-2                      24222   27422     27443      28222
  #   hub-3                      34222   37422     37443      38222

  # add an edge and push its account to the running hubs
  $rel_bin edge add site-1 --dir $rel_fabric --out site-1.bundle --push tls://127.0.0.1:14222
  # edges added with --token enroll through the hubs: refresh the hubs' export first
  deployments/up.sh
  # run it here; it dials the hubs in the bundle and fails over between them
  $rel_bin leaf --bundle site-1.bundle --data ./site-1-data --listen 127.0.0.1:4222
  $rel_bin leaf status --url nats://127.0.0.1:4222

  # watch the edges from the cloud, publish at the edge
  $rel_bin sub --server tls://127.0.0.1:14222 --creds $rel_fabric/users/cloud.creds --tlsca $rel_fabric/pki/ca.pem 'edges.*.telemetry.>'
  $rel_bin pub --server nats://127.0.0.1:4222 telemetry.temp 21.5

Stop with deployments/down.sh (removes the containers and the hubs' data;
the store stays in $rel_fabric).
EOF
