# The wastatus binary on a small Debian base that has wget for health checks.
#
# Built with cgo, against the same glibc it runs on: Pebble then allocates
# its block cache and memtables with C malloc, outside the Go heap, and the
# binary limits glibc to one malloc arena (cmd/wastatus/malloc_cgo.go). A
# CGO_ENABLED=0 build works too, but its Pebble memory is Go heap that the
# collector must keep within --memory-limit: `wastatus bench` measured the
# same peak RSS (about 245 MiB) for 30-40% more CPU per event.
FROM golang:1.26-trixie AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -o /wastatus ./cmd/wastatus

FROM debian:trixie-slim
RUN apt-get update \
	&& apt-get install -y --no-install-recommends ca-certificates wget \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --uid 10001 --no-create-home wastatus \
	&& mkdir /data && chown wastatus /data
COPY --from=build /wastatus /usr/local/bin/wastatus
USER wastatus
ENTRYPOINT ["wastatus"]
