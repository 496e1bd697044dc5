#!/usr/bin/env bash
# Install what rlshape needs to build, test and benchmark on Debian 12, and mount bpffs.
# Idempotent: asks apt only when a package is missing. Must run as root.
#
#   tools/install-deps.sh           everything `make check` and `make bench` run
#
# One list, not a build list and a bench list: `make check` runs the benchmark's smoke test
# and the end-to-end suites run nginx and scapy, so a fresh machine needs all of it.
set -euo pipefail

# The one list of Debian packages the project needs.
PACKAGES=(
	clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libjansson-dev
	libcmocka-dev pkg-config make gcc iproute2 curl ethtool python3
	# libFuzzer and clang's sanitizer runtimes (make fuzz; make check runs each fuzzer briefly):
	# clang-14 only recommends them, and recommends are not installed here.
	libclang-rt-14-dev
	# The end-to-end suites: nginx as a real upstream, scapy for forged segments, node for the
	# official OpenAI Node SDK (50_adversary installs it from the npm registry with npm ci, over
	# TLS: ca-certificates, which Debian's npm pulls in but an npm bundled with nodejs may not).
	nginx python3-scapy nodejs ca-certificates
	# 16_tls_upstream: nginx terminates TLS with a certificate the suite makes.
	openssl
	# 18_websocket: a real WebSocket server and client (Debian's python3, not a pyenv one).
	python3-websockets
	# What bench/compare.sh compares rlshape with, and its load generator.
	haproxy wrk
	# The daemon's /metrics endpoint; a real Prometheus (and promtool) for 35_metrics;
	# systemd-analyze for 36_service, with what its verify runs: the /bin/kill of the daemon
	# unit's reload, and man for the units' Documentation=man:rlshape(8).
	libmicrohttpd-dev prometheus systemd procps man-db
	# A fleet of gateways shares limits through Redis: its client, and a server for 70_fleet.
	libhiredis-dev redis-server
	# Shaping's fq qdisc, set up over rtnetlink (user/qdisc.c).
	libmnl-dev
)

case ${1:-} in
"" | --bench) ;; # --bench: kept for old scripts; everything is installed anyway
-h | --help)
	echo "usage: tools/install-deps.sh"
	exit 0
	;;
*)
	echo "install-deps: unknown option '$1' (usage: tools/install-deps.sh)" >&2
	exit 2
	;;
esac

if [[ $(id -u) -ne 0 ]]; then
	echo "install-deps: must run as root (apt-get install, mount -t bpf)" >&2
	exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [[ $status != "install ok installed" ]]; then
		missing+=("$pkg")
	fi
done

# npm: Debian's package, unless nodejs came from elsewhere with npm bundled (NodeSource's
# nodejs conflicts with Debian's npm package).
if ! command -v npm >/dev/null && [[ $(dpkg-query -W -f='${Status}' npm 2>/dev/null || true) != \
	"install ok installed" ]]; then
	missing+=(npm)
fi

did=()
if ((${#missing[@]})); then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
	did+=("installed ${missing[*]}")
fi

if [[ $(stat -f -c %T /sys/fs/bpf 2>/dev/null || true) != bpf_fs ]]; then
	mount -t bpf bpf /sys/fs/bpf
	did+=("mounted /sys/fs/bpf")
fi

if ((${#did[@]})); then
	printf 'install-deps: %s\n' "$(printf '%s; ' "${did[@]}" | sed 's/; $//')"
else
	echo "install-deps: all ${#PACKAGES[@]} packages present, /sys/fs/bpf mounted"
fi
