#!/usr/bin/env bash
# `make stack-test`: the compose stack for real on this machine (docs/operations.md, "Running
# the stack without a registry"). Needs root on a Debian machine without an image registry:
#   1. the Docker engine: Debian's docker.io (and debootstrap) installed when missing, dockerd
#      started in the background when it is not running (no systemd), its socket waited for;
#   2. Docker Compose v2 (deploy/local/tools.txt, pip --target .venv/stack-tools);
#   3. the images: the debootstrap base (deploy/local/base-image.sh, tagged by the hash of its
#      inputs), then `compose build` of deploy/compose.local.yaml (BuildKit's layer cache: only
#      what changed is rebuilt);
#   4. tests/stack (DATACLOUD_STACK_TEST=1): stack up, a night through the REST API, checks,
#      `down -v --remove-orphans`, nothing of the project left.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

log() { echo "stack-test: $*"; }

# --- 1. the engine
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  log "installing Debian's docker.io and debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/datacloud-dockerd.log)"
  nohup dockerd >/var/log/datacloud-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -30 /var/log/datacloud-dockerd.log >&2; log "dockerd did not start within 60 s"; exit 1; }
fi

# --- 2. compose
tools="$repo/.venv/stack-tools"
compose="$tools/compose/docker-compose"
if [ ! -x "$compose" ] || [ deploy/local/tools.txt -nt "$compose" ]; then
  log "installing $(grep -v '^#' deploy/local/tools.txt)"
  rm -rf "$tools"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$tools" -r deploy/local/tools.txt
  chmod +x "$compose"
  touch "$compose"
fi
export DATACLOUD_COMPOSE="$compose"

# --- 3. images
export DATACLOUD_IMAGE="${DATACLOUD_IMAGE:-datacloud-local/datacloud:dev}"
start=$(date +%s)
base="$(deploy/local/base-image.sh)"
log "base image $base"
build=("$compose" -f docker-compose.yml -f deploy/compose.local.yaml --env-file .env.example -p datacloud-images)
buildlog="$(mktemp /tmp/datacloud-stack-build.XXXXXX.log)"
if ! { "${build[@]}" build airflow-base && "${build[@]}" build; } >"$buildlog" 2>&1; then
  tail -60 "$buildlog" >&2
  log "image build failed (whole log: $buildlog)"
  exit 1
fi
rm -f "$buildlog"
docker image prune -f >/dev/null  # the untagged images a rebuild replaced
log "images ready in $(( $(date +%s) - start )) s"

# --- the proof keyring the lookup API reads (a compose secret, docs/proofs.md#deploy): made
# once, kept; owned by the image's airflow user (uid 50000), mode 0600
ring=deploy/secrets/proof-keys.json
[ -f "$ring" ] || .venv/bin/datacloud proof keys new --keyring "$ring" >/dev/null
chown 50000 "$ring" && chmod 600 "$ring"

# --- 4. the night
DATACLOUD_STACK_TEST=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/stack "$@"
