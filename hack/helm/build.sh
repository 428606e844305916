#!/usr/bin/env bash
# Builds helm from its pinned Go module (hack/helm/go.mod, `tool helm.sh/helm/v4/cmd/helm`) into a
# cache outside the checkout (CI runs in a fresh clone) and prints the folder holding it.
# Rebuilds only when the pin (go.mod/go.sum) or this script changes. With HELM_BIN set to an
# executable helm, prints its folder instead (no build).
set -euo pipefail

if [[ -n "${HELM_BIN:-}" ]]; then
  [[ -x "$HELM_BIN" ]] || { echo "HELM_BIN=$HELM_BIN is not an executable" >&2; exit 1; }
  dirname "$HELM_BIN"
  exit 0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
helm_version="$(awk '$1 == "helm.sh/helm/v4" {print $2; exit}' "$here/go.mod")"
[[ -n "$helm_version" ]] || { echo "no helm.sh/helm/v4 requirement in $here/go.mod" >&2; exit 1; }
pin_hash="$(cat "$here"/go.{mod,sum} "$here/build.sh" | sha256sum | cut -c1-12)"
dest="${XDG_CACHE_HOME:-$HOME/.cache}/ecsrole/helm-${helm_version}-${pin_hash}"

if [[ -x "$dest/helm" ]]; then
  echo "$dest"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build helm (or set HELM_BIN)" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
tmp="$(mktemp -d "${dest}.partial.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -trimpath"
echo "building helm $helm_version into $dest; the first build takes a few minutes" >&2
start=$SECONDS
# The same version stamping as helm's own Makefile, so `helm version` names the release.
(cd "$here" && go build \
  -ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=${helm_version} -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
  -o "$tmp/helm" helm.sh/helm/v4/cmd/helm)
echo "helm built in $((SECONDS - start))s" >&2
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
