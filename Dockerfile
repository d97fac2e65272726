# Multi-stage build of a static gping (and gtrace, once it exists) that runs as a non-root user.
#
# The container needs ONE of:
#   docker run --rm --cap-add=NET_RAW gping -c 3 198.18.0.1
#       raw ICMP sockets; the binary carries cap_net_raw as a file capability, so the non-root
#       user may use it when the container is granted NET_RAW (Docker grants it by default).
#   docker run --rm --sysctl net.ipv4.ping_group_range="0 2147483647" gping -c 3 198.18.0.1
#       unprivileged ICMP datagram ("ping") sockets; no capability at all (--cap-drop=ALL works).
# In Kubernetes: securityContext.capabilities.add: [NET_RAW], or the pod sysctl
# net.ipv4.ping_group_range (a "safe" sysctl since Kubernetes 1.18).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/gping ./cmd/gping
# File capability so that a non-root user can open raw sockets when the runtime allows NET_RAW;
# without it, gping falls back to ping sockets on its own.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libcap2-bin \
 && setcap cap_net_raw+ep /out/gping

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gping /usr/local/bin/gping
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/gping"]
CMD ["-c", "3", "127.0.0.1"]
