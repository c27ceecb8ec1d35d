# CCGate in a container: a Rust builder stage, then a small Debian runtime with the one binary.
#
#   docker build -t ccgate .
#   docker run -d --name ccgate -p 3000:3000 -v ccgate-config:/app/config -v ccgate-data:/app/data \
#     -e ANTHROPIC_API_KEY=sk-ant-... ccgate
#
# The first start with an empty config volume writes working config files and prints the admin password and a
# tenant key (`docker logs ccgate`). Everything else is configured in /app/config (hot-reloaded) or by the env
# vars below.

ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# The example config files are compiled into the binary (`ccgate init`, first start).
COPY config ./config
# `dist`: the release profile with fat LTO and one codegen unit. Plain RUN (no BuildKit cache mounts), so the
# file builds with any builder: BuildKit, the legacy builder, podman/buildah.
RUN cargo build --locked --profile dist -p ccgate \
    && install -m 0755 target/dist/ccgate /usr/local/bin/ccgate

FROM debian:bookworm-slim
# ca-certificates: upstreams over TLS trust the system's roots as well as Mozilla's built in ones.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin ccgate \
    && mkdir -p /app/config /app/data \
    && chown ccgate:ccgate /app/config /app/data
COPY --from=build /usr/local/bin/ccgate /usr/local/bin/ccgate
WORKDIR /app
USER ccgate
ENV CCGATE_CONFIG_DIR=/app/config \
    CCGATE_DATA_DIR=/app/data \
    CCGATE_HOST=0.0.0.0 \
    CCGATE_PORT=3000 \
    CCGATE_LOG=info
# Also read by the gateway: CCGATE_WORKERS (runtime threads), CCGATE_DATABASE_URL (postgres://… instead of the
# SQLite file in /app/data), ANTHROPIC_API_KEY (the upstream key written into the config at the first start), and
# any ${NAME} used inside the config files.
VOLUME ["/app/config", "/app/data"]
EXPOSE 3000
# `ccgate health` asks GET /health: it fails when the gateway does not answer or no upstream can serve.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["/bin/sh", "-c", "ccgate health --url http://127.0.0.1:${CCGATE_PORT} > /dev/null"]
# SIGTERM (docker stop) drains: in-flight streams get server.shutdownGraceSeconds (30 s) to finish. Give docker
# stop at least that long: `docker stop -t 45`, or `stop_grace_period` in compose.
STOPSIGNAL SIGTERM
ENTRYPOINT ["ccgate"]
CMD ["serve"]
