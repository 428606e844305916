#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kubectl from the pinned Go modules into a cache outside the
# checkout (CI runs in a fresh clone) and prints the folder holding them. Rebuilds only when a
# pin (go.mod/go.sum) changes. With KUBEBUILDER_ASSETS set, prints that folder instead, as
# envtest does.
set -euo pipefail

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  for bin in etcd kube-apiserver kubectl; do
    [[ -x "$KUBEBUILDER_ASSETS/$bin" ]] || { echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no executable $bin" >&2; exit 1; }
  done
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
k8s_version="$(awk '/^require k8s.io\/kubernetes /{print $3}' "$here/kubernetes/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2; exit} $2 == "go.etcd.io/etcd/server/v3" {print $3; exit}' "$here/etcd/go.mod")"
pin_hash="$(cat "$here"/kubernetes/go.{mod,sum} "$here"/etcd/go.{mod,sum} "$here"/etcd/main.go "$here/build.sh" "$here/version-ldflags.sh" | sha256sum | cut -c1-12)"
dest="${XDG_CACHE_HOME:-$HOME/.cache}/ecsrole/controlplane-k8s-${k8s_version}-etcd-${etcd_version}-${pin_hash}"

if [[ -x "$dest/etcd" && -x "$dest/kube-apiserver" && -x "$dest/kubectl" ]]; then
  echo "$dest"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the control plane (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }
tmp="$(mktemp -d "${dest}.partial.XXXXXX" 2>/dev/null || { mkdir -p "$(dirname "$dest")"; mktemp -d "${dest}.partial.XXXXXX"; })"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -trimpath"
echo "building control plane (kubernetes $k8s_version, etcd $etcd_version) into $dest; the first build takes several minutes" >&2
start=$SECONDS
(cd "$here/etcd" && go build -ldflags="-s -w" -o "$tmp/etcd" .)
(cd "$here/kubernetes" && go build -ldflags="-s -w $(bash "$here/version-ldflags.sh" "$k8s_version")" \
  -o "$tmp/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl)
echo "control plane built in $((SECONDS - start))s" >&2
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
