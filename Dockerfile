# syntax=docker/dockerfile:1
#
# Builds every Portcullis binary once and packs each into its own small runtime image:
#
#   docker build --target sidecar   -t portcullis:0.1.0 .
#   docker build --target sts       -t portcullis-sts:0.1.0 .
#   docker build --target order-app -t portcullis-order-app:0.1.0 .
#   docker build --target inventory-app -t portcullis-inventory-app:0.1.0 .
#   docker build --target demo      -t portcullis-demo:0.1.0 .   # `portcullis-demo certs`
#
# `docker compose up --build` builds them all (compose.yaml). The runtime images are
# distroless: glibc and CA certificates, no shell or package manager, running as the
# `nonroot` user (65532). Configuration, keys and certificates come from mounted files.

# The toolchain the repository's Cargo.lock is tested with; the crates need at least the
# workspace's rust-version (1.85).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep downloaded crates and compiled dependencies between builds. The
# target folder is a cache mount, so the binaries are copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile deploy --locked \
        -p portcullis -p portcullis-sts -p order-app -p inventory-app -p portcullis-demo \
    && mkdir -p /out/bin \
    && cp target/deploy/portcullis target/deploy/portcullis-sts target/deploy/order-app \
        target/deploy/inventory-app target/deploy/portcullis-demo /out/bin/
# Mount points the services write to, owned by the runtime user so that a new named volume
# mounted there is writable (Docker copies the ownership into an empty volume).
RUN mkdir -p /out/rootfs/data /out/rootfs/certs /out/rootfs/var/lib/portcullis-sts \
        /out/rootfs/etc/portcullis/config /out/rootfs/etc/portcullis/tls

# The Debian release matches the build image, so the binaries find the glibc they linked.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build --chown=65532:65532 /out/rootfs/ /
USER 65532:65532
LABEL org.opencontainers.image.licenses="Apache-2.0"

FROM runtime AS sts
COPY --from=build /out/bin/portcullis-sts /usr/local/bin/
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/portcullis-sts"]

FROM runtime AS order-app
COPY --from=build /out/bin/order-app /usr/local/bin/
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/order-app"]

FROM runtime AS inventory-app
COPY --from=build /out/bin/inventory-app /usr/local/bin/
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/inventory-app"]

FROM runtime AS demo
COPY --from=build /out/bin/portcullis-demo /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/portcullis-demo"]

# The sidecar, last so that a plain `docker build .` produces it.
FROM runtime AS sidecar
COPY --from=build /out/bin/portcullis /usr/local/bin/
EXPOSE 9443 9901
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["--config", "/etc/portcullis/config/portcullis.toml"]
