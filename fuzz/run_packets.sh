#!/usr/bin/env bash
# Run the packet fuzzer (fuzz/packet_stream.c) for a while: as root (BPF_PROG_TEST_RUN, a
# network namespace of its own, which it makes and which goes with it).
#
#   fuzz/run_packets.sh [--seconds N] [--corpus DIR]
#
# --seconds N   how long (default 60)
# --corpus DIR  where new inputs are kept (default build/fuzz/corpus/packet_stream); the seeds in
#               fuzz/corpus/packet_stream are read too, never written
#
# Ends with the fuzzer's report ("pktfuzz: ..." lines: executions, and how often each property
# was checked). On a mismatch the fuzzer aborts, the input is kept under
# build/fuzz/artifacts/packet_stream/, and this exits non-zero; rerun that input alone with
# PKTFUZZ_DEBUG=1 build/fuzz/packet_stream FILE to see what was sent and what came of it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD=${BUILD:-build}
seconds=60
corpus=$BUILD/fuzz/corpus/packet_stream
while (($#)); do
	case $1 in
	--seconds) seconds=$2; shift 2 ;;
	--corpus) corpus=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run_packets: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "run_packets: --seconds takes a whole number, got '$seconds'" >&2; exit 2; }
fuzzer=$BUILD/fuzz/packet_stream
if [[ ! -x $fuzzer ]]; then
	echo "run_packets: $fuzzer is missing: run make" >&2
	exit 1
fi
if (($(id -u) != 0)); then
	echo "run_packets: root is required (BPF programs, a network namespace)" >&2
	exit 1
fi
artifacts=$BUILD/fuzz/artifacts/packet_stream
mkdir -p "$corpus" "$artifacts"
args=(-max_total_time="$seconds" -timeout=30 -artifact_prefix="$artifacts/" -print_final_stats=1)
PKTFUZZ_REPORT=1 exec "$fuzzer" "${args[@]}" "$corpus" fuzz/corpus/packet_stream
