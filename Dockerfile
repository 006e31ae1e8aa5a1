# syntax=docker/dockerfile:1
# regiondb: multi-stage build. The build stage has what rdkafka's bundled
# librdkafka needs (a C toolchain, make, zlib and OpenSSL headers, pkg-config:
# all in the rust image); the runtime stage is slim, has the OpenSSL library
# and CA roots that TLS to Kafka uses, and runs as a non-root user.
# tests/api/image replays the build stage from this context without Docker.

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so code changes do not rebuild them (librdkafka takes
# minutes).
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
# Templates and static files are compiled into the binary.
COPY src ./src
COPY templates ./templates
COPY static ./static
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin regiondb
COPY --from=build /src/target/release/regiondb /usr/local/bin/regiondb
USER regiondb
WORKDIR /home/regiondb
ENV BIND_ADDRESS=0.0.0.0 \
    PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT}/healthz" || exit 1
ENTRYPOINT ["regiondb"]
