# Freshet: a release build on the official Swift image, then a slim runtime with only libpq and hiredis.
# Package names mirror scripts/lib/servers.sh (libpq-dev, libhiredis-dev, pkg-config to build; libpq5, libhiredis0.14 to run).
FROM swift:6.1-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libpq-dev libhiredis-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product freshet --static-swift-stdlib \
 && install -D "$(swift build -c release --show-bin-path)/freshet" /out/freshet

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libpq5 libhiredis0.14 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin freshet
COPY --from=build /out/freshet /usr/local/bin/freshet
USER freshet
ENV FRESHET_CONFIG=/etc/freshet/freshet.yml FRESHET_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/freshet"]
CMD ["run"]
