# Multi-stage build of static gping and gtrace binaries that run as a non-root user.
#
# The container needs ONE of:
#   docker run --rm --cap-add=NET_RAW gping --socket=raw -c 3 198.18.0.1
#       raw ICMP sockets; the binaries carry cap_net_raw as a permitted file capability (+p,
#       raised by the program itself), so the non-root user may use it when the container is
#       granted NET_RAW (Docker grants it by default), and the binaries still run without it.
#   docker run --rm --sysctl net.ipv4.ping_group_range="0 2147483647" gping -c 3 198.18.0.1
#       unprivileged ICMP datagram ("ping") sockets; no capability at all (--cap-drop=ALL works).
# In Kubernetes: securityContext.capabilities.add: [NET_RAW], or the pod sysctl
# net.ipv4.ping_group_range (a "safe" sysctl since Kubernetes 1.18).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/gping ./cmd/gping \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/gtrace ./cmd/gtrace
# Permitted (not effective) file capability: a non-root user can open raw sockets when the
# runtime allows NET_RAW, and exec does not fail when it does not (it would with +ep); gping
# falls back to ping sockets on its own.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libcap2-bin \
 && setcap cap_net_raw+p /out/gping /out/gtrace

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gping /out/gtrace /usr/local/bin/
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/gping"]
CMD ["-c", "3", "127.0.0.1"]
