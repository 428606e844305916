#!/usr/bin/env bash
# Packs the node's pod sandbox program (hack/node/pause, built by hack/node/build.sh) into an
# image containerd uses as its sandbox image, and prints the docker-archive's path. The test
# machines cannot pull registry.k8s.io/pause. Cached by the binary's content.
# Usage: pause.sh PATH/TO/pause
set -euo pipefail
binary="${1:?usage: pause.sh PATH/TO/pause}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ecsrole"
hash="$(cat "$binary" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
archive="$cache/images/pause-${hash}.docker.tar"
if [[ ! -s "$archive" ]]; then
  mkdir -p "$cache/images"
  buildah=(buildah --root "$cache/buildah/storage" --runroot "$cache/buildah/run" --storage-driver vfs)
  container="$("${buildah[@]}" from scratch)"
  "${buildah[@]}" copy --quiet --chmod 0755 "$container" "$binary" /pause
  "${buildah[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$container"
  "${buildah[@]}" commit --quiet --rm "$container" "localhost/ecsrole-pause:${hash}" >/dev/null
  "${buildah[@]}" push --quiet "localhost/ecsrole-pause:${hash}" \
    "docker-archive:$archive.partial:localhost/ecsrole-pause:${hash}"
  mv "$archive.partial" "$archive"
fi
echo "$archive"
