# syntax=docker/dockerfile:1
# Base images are pinned by tag. For production builds pin them by digest
# too (golang:1.26-bookworm@sha256:…), so that a rebuild gets the same
# bytes; take the digests from your registry, and let a bot bump them.
#
# Build: a static binary, no cgo, reproducible paths.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Empty: `strangler version` then reports what the binary knows (its module
# version or VCS revision), which in this build is "devel": .dockerignore
# keeps .git out of the context, so Go has no VCS information to stamp.
# Release builds name the version:
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" .
ARG VERSION=
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/strangler ./cmd/strangler

# Run: distroless static, non-root (uid 65532), nothing but the binary
# and CA certificates for https upstreams.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/strangler /usr/local/bin/strangler
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/strangler", "serve", "--config", "/etc/strangler/strangler.yaml"]
