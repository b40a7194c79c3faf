#!/usr/bin/env bash
# The Containerfile's last stage without a registry: packs a static binary built on this
# machine into an image from `scratch` with buildah (user 65532, the CA bundle, an empty /tmp,
# version and revision labels), then runs it once to show the binary starts in an empty image.
#   deploy/container/build-local.sh intake     # builds target/x86_64-unknown-linux-musl/release/redress-intake
# Needs buildah and the Rust musl target (rustup target add x86_64-unknown-linux-musl, and
# musl-tools for the C parts of ring and zstd).
set -euo pipefail
svc=${1:?usage: build-local.sh <service>}
root=$(cd "$(dirname "$0")/../.." && pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
revision=$(git -C "$root" rev-parse HEAD)
(cd "$root" && cargo build --release --locked --target x86_64-unknown-linux-musl -p "redress-$svc" --bin "redress-$svc")
binary="$target/x86_64-unknown-linux-musl/release/redress-$svc"
file "$binary" | grep -q "static" || { echo "$binary is not statically linked"; exit 1; }
empty=$(mktemp -d); trap 'rm -rf "$empty"' EXIT
ctr=$(buildah from scratch)
buildah copy "$ctr" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
buildah copy --chown 65532:65532 "$ctr" "$empty" /tmp >/dev/null
buildah copy "$ctr" "$binary" /redress-service >/dev/null
buildah config --user 65532:65532 --entrypoint '["/redress-service"]' --port 50051 --port 9090 \
  --label org.opencontainers.image.title="redress-$svc" \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.revision="$revision" \
  --label org.opencontainers.image.source="https://github.com/redress-dev/redress" \
  --label org.opencontainers.image.licenses="Apache-2.0" "$ctr"
buildah run "$ctr" -- /redress-service --help | head -n 3
buildah commit --rm "$ctr" "localhost/redress-$svc:$version" >/dev/null
buildah inspect --format '{{.OCIv1.Config.User}} {{.OCIv1.Config.Labels}}' "localhost/redress-$svc:$version"
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "localhost/redress-$svc:$version"
