# Freshet: a release build on the official Swift image, then a slim runtime with only libpq and hiredict.
# Package names mirror scripts/lib/servers.sh (libpq-dev, libssl-dev, pkg-config and libhiredict-dev from
# bookworm-backports to build; libpq5 and libhiredict1.3.1 to run).
FROM swift:6.1-bookworm AS build
RUN echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/backports.list \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libpq-dev libssl-dev pkg-config \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -t bookworm-backports libhiredict-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product freshet --static-swift-stdlib \
 && install -D "$(swift build -c release --show-bin-path)/freshet" /out/freshet

FROM debian:bookworm-slim
RUN echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/backports.list \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -t bookworm-backports libhiredict1.3.1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin freshet
COPY --from=build /out/freshet /usr/local/bin/freshet
USER freshet
ENV FRESHET_CONFIG=/etc/freshet/freshet.yml FRESHET_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/freshet"]
CMD ["run"]
