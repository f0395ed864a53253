# Build: docker build -t ccdc .
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config make perl && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
# Build flags of the allocator (mimalloc commits memory on demand; see src/alloc.rs).
COPY .cargo ./.cargo
COPY src ./src
# Cargo.toml names the bench target; its source must be there for the manifest to load.
COPY benches ./benches
COPY schemas ./schemas
# The built-in simulator is a default feature (docker-compose.yml runs `ccdc simulate`); a lean
# production image: docker build --build-arg FEATURES=--no-default-features -t ccdc .
ARG FEATURES=""
RUN cargo build --release --locked --bin ccdc $FEATURES

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/ccdc --create-home ccdc
COPY --from=build /src/target/release/ccdc /usr/local/bin/ccdc
USER ccdc
WORKDIR /var/lib/ccdc
ENTRYPOINT ["/usr/local/bin/ccdc"]
CMD ["run", "--config", "/etc/ccdc/ccdc.toml"]
