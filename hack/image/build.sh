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
# ${XDG_CACHE_HOME:-~/.cache}/ecsrole, keyed by the inputs: the base images by this script and
# the uv version, the operator image by the Dockerfile and every file the build context holds.
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

uv_version="$(awk -F'[ =]+' '$1 == "ARG" && $2 == "UV_IMAGE" {sub(/.*:/, "", $3); print $3}' "$repo/Dockerfile")"
[[ "$uv_version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "no uv version in the Dockerfile's UV_IMAGE" >&2; exit 1; }
# The host's own certificate authorities (/usr/local/share/ca-certificates, where Debian keeps
# local ones, e.g. an egress proxy's) are added to the local base, so that uv inside the build
# reaches PyPI from where the host does; SSL_CERT_FILE points uv at the system store.
local_cas=(/usr/local/share/ca-certificates/*.crt)
[[ -e "${local_cas[0]}" ]] || local_cas=()
base_hash="$(cat "$here/build.sh" ${local_cas[@]+"${local_cas[@]}"} | sha256sum | cut -c1-12)"
python_image="localhost/ecsrole-base-python:bookworm-${base_hash}"
uv_image="localhost/ecsrole-base-uv:${uv_version}-${base_hash}"
started=$SECONDS

if ! has_image "$python_image"; then
  rootfs="$images/base-python-${base_hash}.tar"
  if [[ ! -s "$rootfs" ]]; then
    say "making $python_image from Debian packages (mmdebstrap)"
    # Documentation and man pages are left out, as the official slim images do.
    mmdebstrap --quiet --mode=root --variant=minbase --format=tar \
      --include=python3,python-is-python3,ca-certificates,netbase,tzdata \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      ${local_cas[@]+--customize-hook="copy-in ${local_cas[*]} /usr/local/share/ca-certificates"} \
      --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
      --customize-hook='chroot "$1" dpkg -l > '"$images/base-python-${base_hash}.dpkg-l.txt" \
      bookworm "$rootfs.partial" http://deb.debian.org/debian
    mv "$rootfs.partial" "$rootfs"
  fi
  container="$("${buildah[@]}" from scratch)"
  "${buildah[@]}" add --quiet "$container" "$rootfs" /
  "${buildah[@]}" config --env LANG=C.UTF-8 --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --cmd python3 "$container"
  "${buildah[@]}" commit --quiet --rm "$container" "$python_image" >/dev/null
fi

if ! has_image "$uv_image"; then
  wheel_dir="$images/uv-${uv_version}"
  if ! compgen -G "$wheel_dir/uv-${uv_version}-*.whl" >/dev/null; then
    say "downloading uv ${uv_version}'s wheel from PyPI"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --dest "$wheel_dir" "uv==${uv_version}"
  fi
  unpacked="$(mktemp -d)"
  trap 'rm -rf "$unpacked"' EXIT
  python3 -m zipfile -e "$(compgen -G "$wheel_dir/uv-${uv_version}-*.whl" | head -1)" "$unpacked"
  container="$("${buildah[@]}" from scratch)"
  "${buildah[@]}" copy --quiet --chmod 0755 "$container" "$unpacked/uv-${uv_version}.data/scripts/uv" /uv
  "${buildah[@]}" copy --quiet --chmod 0755 "$container" "$unpacked/uv-${uv_version}.data/scripts/uvx" /uvx
  "${buildah[@]}" config --entrypoint '["/uv"]' "$container"
  "${buildah[@]}" commit --quiet --rm "$container" "$uv_image" >/dev/null
  rm -rf "$unpacked"
  trap - EXIT
fi

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
      --build-arg "REVISION=$(git -C "$repo" rev-parse HEAD 2>/dev/null || true)" \
      --tag "$tag" "$repo" >&2
  fi
  "${buildah[@]}" push --quiet "$tag" "docker-archive:$archive.partial:$tag"
  mv "$archive.partial" "$archive"
  # Older images of the operator are not needed any more: the archive is the cache.
  "${buildah[@]}" rmi --force "$tag" >/dev/null 2>&1 || true
  say "built in $((SECONDS - started))s"
fi
echo "$archive"
