#!/usr/bin/env bash
# Builds the operator image for `make test-cluster` from the repository's Dockerfile, the way a
# user builds it, and prints the path of a docker-archive that containerd imports.
#
# The machines that run the tests reach package registries but no container registry, so the
# Dockerfile's two base images are made locally, standing in for the official ones:
#   - PYTHON_IMAGE: Debian 12 "bookworm" from its packages (mmdebstrap): python3 (3.11) with
#     `python` on PATH, ca-certificates, netbase, tzdata, as python:3.11-slim-bookworm provides;
#   - UV_IMAGE: /uv from uv's PyPI wheel (the same uv release the Dockerfile names).
# buildah (Debian's) builds with them; the release path (BuildKit and the official images, see
# README.md) builds the same Dockerfile unchanged.
#
# Needs root, buildah and mmdebstrap (`.ci/run` installs them). Everything is cached under
# ${XDG_CACHE_HOME:-~/.cache}/ecsrole, keyed by the inputs: the base images by base.sh, the uv
# version and the host's CAs; the operator image by the Dockerfile, the bases and every file
# the build context holds.
# buildah keeps its own storage there too (vfs driver: no overlay mounts left on the host).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ecsrole"
images="$cache/images"
mkdir -p "$images"
for tool in buildah mmdebstrap python3; do
  command -v "$tool" >/dev/null || { echo "$tool is required (Debian package; .ci/run installs it)" >&2; exit 1; }
done
buildah=(buildah --root "$cache/buildah/storage" --runroot "$cache/buildah/run" --storage-driver vfs)

has_image() { "${buildah[@]}" inspect --type image "$1" >/dev/null 2>&1; }
say() { echo "image: $*" >&2; }

started=$SECONDS
bases="$(bash "$here/base.sh")"
read -r python_image uv_image <<<"$bases"

# The operator image: keyed by the Dockerfile, the build context .dockerignore lets in, and the bases.
context_hash="$(cd "$repo" && {
  printf '%s\n' "$python_image" "$uv_image"
  cat Dockerfile .dockerignore
  git ls-files -z --cached --others --exclude-standard pyproject.toml uv.lock README.md operator \
    hack/image/build-constraints.txt | sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-12)"
tag="localhost/ecsrole:test-${context_hash}"
archive="$images/ecsrole-${context_hash}.docker.tar"
if [[ ! -s "$archive" ]]; then
  if ! has_image "$tag"; then
    say "building $tag from the Dockerfile with buildah"
    "${buildah[@]}" bud --quiet --pull=never --isolation=chroot --network=host --layers=false \
      --build-arg "PYTHON_IMAGE=$python_image" --build-arg "UV_IMAGE=$uv_image" \
      --tag "$tag" "$repo" >&2
  fi
  "${buildah[@]}" push --quiet "$tag" "docker-archive:$archive.partial:$tag"
  mv "$archive.partial" "$archive"
  # The archive is the cache: drop the built image, the working containers buildah 1.28 leaves
  # for a stage without instructions (`FROM uv`), and older archives.
  "${buildah[@]}" rmi --force "$tag" >/dev/null 2>&1 || true
  "${buildah[@]}" rm --all >/dev/null 2>&1 || true
  find "$images" -maxdepth 1 -name 'ecsrole-*.docker.tar' ! -name "${archive##*/}" -delete
  say "built in $((SECONDS - started))s"
fi
echo "$archive"
