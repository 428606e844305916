#!/usr/bin/env bash
# Prints the -X linker flags that stamp a Kubernetes binary with its release, as the Kubernetes
# build does (hack/lib/version.sh there): without them `kubectl version` and the API server's
# /version say v0.0.0-master, and Helm refuses a chart's `kubeVersion` constraint.
# Usage: version-ldflags.sh v1.34.4
set -euo pipefail
version="${1:?usage: version-ldflags.sh vMAJOR.MINOR.PATCH}"
[[ "$version" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || { echo "not a release version: $version" >&2; exit 1; }
major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
flags=()
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  flags+=(
    "-X ${pkg}.gitVersion=${version}"
    "-X ${pkg}.gitMajor=${major}"
    "-X ${pkg}.gitMinor=${minor}"
    "-X ${pkg}.gitTreeState=clean"
    "-X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  )
done
echo "${flags[*]}"
