# syntax=docker/dockerfile:1
# Build: a static binary, no cgo, reproducible paths.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/strangler ./cmd/strangler

# Run: distroless static, non-root (uid 65532), nothing but the binary
# and CA certificates for https upstreams.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/strangler /usr/local/bin/strangler
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/strangler", "serve", "--config", "/etc/strangler/strangler.yaml"]
