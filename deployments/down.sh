#!/usr/bin/env bash
# down.sh stops the Tether cloud started by up.sh and removes its containers,
# network and volumes (the hubs' JetStream data and resolver state). The
# store (deployments/.fabric) and the built binary stay; delete them by hand
# to start from scratch.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Compose interpolates these even for down; their values do not matter here.
export TETHER_UID=${TETHER_UID:-$hub_uid_default} TETHER_GID=${TETHER_GID:-$hub_uid_default}
compose down --volumes --remove-orphans --timeout 30 >&2
say "removed project $COMPOSE_PROJECT_NAME (containers, network, volumes); store kept in $TETHER_FABRIC"
