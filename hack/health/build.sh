#!/usr/bin/env bash
# Builds ecsrole-health (main.go here: kstatus, Flux's CEL health checks and gopher-lua, pinned in
# go.mod/go.sum) into a cache outside the checkout (CI runs in a fresh clone) and prints the folder
# holding it. Rebuilds only when the pins, the source or this script change. With HEALTH_BIN set
# to an executable, prints its folder instead (no build).
set -euo pipefail

if [[ -n "${HEALTH_BIN:-}" ]]; then
  [[ -x "$HEALTH_BIN" ]] || { echo "HEALTH_BIN=$HEALTH_BIN is not an executable" >&2; exit 1; }
  dirname "$HEALTH_BIN"
  exit 0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pin_hash="$(cat "$here"/go.{mod,sum} "$here"/*.go "$here/build.sh" | sha256sum | cut -c1-12)"
dest="${XDG_CACHE_HOME:-$HOME/.cache}/ecsrole/health-${pin_hash}"

if [[ -x "$dest/ecsrole-health" ]]; then
  echo "$dest"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build ecsrole-health (or set HEALTH_BIN)" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
tmp="$(mktemp -d "${dest}.partial.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -trimpath"
echo "building ecsrole-health into $dest" >&2
start=$SECONDS
(cd "$here" && go vet . && go build -ldflags="-s -w" -o "$tmp/ecsrole-health" .)
echo "ecsrole-health built in $((SECONDS - start))s" >&2
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
