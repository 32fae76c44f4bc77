# The wastatus binary on a small base that has wget for health checks.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /wastatus ./cmd/wastatus

FROM alpine:3.22
RUN adduser -D -u 10001 wastatus && mkdir /data && chown wastatus /data
COPY --from=build /wastatus /usr/local/bin/wastatus
USER wastatus
ENTRYPOINT ["wastatus"]
