# Build: the whole workspace, release profile.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin mailops

# Run: a slim image with the binary and curl for the health check.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/mailops --create-home mailops
COPY --from=build /src/target/release/mailops /usr/local/bin/mailops
USER mailops
WORKDIR /var/lib/mailops
ENV MAILOPS_BIND=0.0.0.0:8080 \
    MAILOPS_DATA_DIR=/var/lib/mailops/data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["mailops"]
CMD ["serve"]
