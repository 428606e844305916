#!/usr/bin/env bash
# Builds the node components of `make test-cluster` (kubelet, kube-controller-manager,
# kube-scheduler) from the pinned k8s.io/kubernetes module, stamped with its release like the
# control plane, plus the pod sandbox program (pause/), into a cache outside the checkout (CI
# runs in a fresh clone), and prints the folder holding them. Rebuilds only when a pin changes.
# The node's go.mod must pin the same release and replace block as the control plane's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
controlplane="$here/../controlplane"
k8s_version="$(awk '/^require k8s.io\/kubernetes /{print $3}' "$here/kubernetes/go.mod")"
cp_version="$(awk '/^require k8s.io\/kubernetes /{print $3}' "$controlplane/kubernetes/go.mod")"
if [[ "$k8s_version" != "$cp_version" ]] \
  || ! diff -q <(sed -n '/^replace (/,/^)/p' "$here/kubernetes/go.mod") \
    <(sed -n '/^replace (/,/^)/p' "$controlplane/kubernetes/go.mod") >/dev/null; then
  echo "hack/node/kubernetes/go.mod pins kubernetes $k8s_version, the control plane $cp_version" \
    "(or their replace blocks differ): regenerate it as its header says" >&2
  exit 1
fi
pin_hash="$(cat "$here"/kubernetes/go.{mod,sum} "$here"/pause/{go.mod,main.go} "$here/build.sh" \
  "$controlplane/version-ldflags.sh" | sha256sum | cut -c1-12)"
dest="${XDG_CACHE_HOME:-$HOME/.cache}/ecsrole/node-k8s-${k8s_version}-${pin_hash}"

if [[ -x "$dest/kubelet" && -x "$dest/kube-controller-manager" && -x "$dest/kube-scheduler" && -x "$dest/pause" ]]; then
  echo "$dest"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the node components" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
tmp="$(mktemp -d "${dest}.partial.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -trimpath"
echo "building node components (kubernetes $k8s_version) into $dest; the first build takes several minutes" >&2
start=$SECONDS
(cd "$here/pause" && go build -ldflags="-s -w" -o "$tmp/pause" .)
(cd "$here/kubernetes" && go build -ldflags="-s -w $(bash "$controlplane/version-ldflags.sh" "$k8s_version")" \
  -o "$tmp/" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler)
echo "node components built in $((SECONDS - start))s" >&2
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
