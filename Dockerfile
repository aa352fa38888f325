# syntax=docker/dockerfile:1
# The modelgate controller image. Stage 1 builds the proxy-wasm filter for wasm32-wasip1,
# then the controller with that module embedded (controller/build.rs reads the file named
# by MODELGATE_FILTER_WASM), as a static musl binary. Stage 2 is that one binary on
# distroless/static, running as the non-root user 65532.
#
#   docker build -t <registry>/modelgate:0.1.0 .
#
# Built natively for the build platform (x86_64 or aarch64, by `uname -m`); for another
# platform use `docker buildx build --platform ...`, which runs stage 1 under emulation.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-wasip1 "$(uname -m)-unknown-linux-musl"
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    cargo build --locked --release -p modelgate-filter --target wasm32-wasip1; \
    MODELGATE_FILTER_WASM=/src/target/wasm32-wasip1/release/modelgate_filter.wasm \
      cargo build --locked --release -p modelgate-controller --bin modelgate \
      --target "$(uname -m)-unknown-linux-musl"; \
    cp "target/$(uname -m)-unknown-linux-musl/release/modelgate" /modelgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /modelgate /modelgate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/modelgate"]
CMD ["run"]
