#!/usr/bin/env bash
# The two base images the Dockerfile names, made locally for `make test-cluster` (see build.sh,
# which calls this): PYTHON_IMAGE from Debian 12 packages (mmdebstrap) and UV_IMAGE from uv's
# PyPI wheel. Prints "PYTHON_IMAGE UV_IMAGE" (references in buildah's storage under the cache).
# Keyed by this script and the host's local CAs, so editing build.sh does not remake them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ecsrole"
images="$cache/images"
mkdir -p "$images"
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
base_hash="$(cat "$here/base.sh" ${local_cas[@]+"${local_cas[@]}"} | sha256sum | cut -c1-12)"
python_image="localhost/ecsrole-base-python:bookworm-${base_hash}"
uv_image="localhost/ecsrole-base-uv:${uv_version}-${base_hash}"

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

# Bases of older recipes are not needed any more.
find "$images" -maxdepth 1 -name 'base-python-*' ! -name "base-python-${base_hash}*" -delete
"${buildah[@]}" images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/ecsrole-base-' \
  | grep -v -- "-${base_hash}\$" | xargs -r "${buildah[@]}" rmi --force >/dev/null 2>&1 || true
echo "$python_image $uv_image"
