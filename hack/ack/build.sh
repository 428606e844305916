#!/usr/bin/env bash
# Builds the ACK iam-controller from its pinned Go module (hack/ack/go.mod) into a cache outside
# the checkout and prints the folder holding the binary `controller` and a `crds/` copy of the
# CRDs from the same module. Rebuilds only when the pin or this script changes. Only `make bench`
# (the side-by-side peer run) needs it; nothing of ACK is committed here.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
module=github.com/aws-controllers-k8s/iam-controller
ack_version="$(awk -v m="$module" '$1 == m {print $2; exit}' "$here/go.mod")"
[[ -n "$ack_version" ]] || { echo "no $module requirement in $here/go.mod" >&2; exit 1; }
pin_hash="$(cat "$here"/go.{mod,sum} "$here/build.sh" | sha256sum | cut -c1-12)"
dest="${XDG_CACHE_HOME:-$HOME/.cache}/ecsrole/ack-iam-${ack_version}-${pin_hash}"

if [[ -x "$dest/controller" && -d "$dest/crds" ]]; then
  echo "$dest"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the ACK iam-controller" >&2; exit 1; }
# The module is not in the checksum database; go.sum (committed) still pins its content.
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/aws-controllers-k8s"
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -trimpath"
mkdir -p "$(dirname "$dest")"
tmp="$(mktemp -d "${dest}.partial.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "building ACK iam-controller $ack_version into $dest; the first build takes a few minutes" >&2
start=$SECONDS
(cd "$here" && go mod download "$module")
src="$(cd "$here" && go list -m -f '{{.Dir}}' "$module")"
(cd "$here" && go build -ldflags="-s -w" -o "$tmp/controller" "$module/cmd/controller")
mkdir "$tmp/crds"
cp "$src"/helm/crds/*.yaml "$tmp/crds/"
chmod u+w "$tmp"/crds/*.yaml
echo "ACK iam-controller built in $((SECONDS - start))s" >&2
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
