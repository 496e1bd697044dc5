#!/usr/bin/env bash
# What every end-to-end suite shares on top of the namespace bed (bed.sh): the programs it
# runs, rlshape in the gateway's namespace, and the upstream's log.

# shellcheck source=tests/lib/bed.sh
source "$(dirname "${BASH_SOURCE[0]}")/bed.sh"

# suite_programs SUITE: the built programs as $RLS, $MOCK, $LOADGEN and $IMPORT (under $BUILD,
# default build/); exits, saying what to run, when one is missing.
suite_programs() {
	local f
	BUILD_DIR=${BUILD:-build}
	[[ $BUILD_DIR == /* ]] || BUILD_DIR=$BED_REPO/$BUILD_DIR
	RLS=$BUILD_DIR/rlshape
	MOCK=$BUILD_DIR/tools/mock-upstream
	LOADGEN=$BUILD_DIR/tools/loadgen
	IMPORT=$BUILD_DIR/tools/rls-import
	for f in "$RLS" "$MOCK" "$LOADGEN" "$IMPORT"; do
		if [[ ! -x $f ]]; then
			echo "$1: $f is missing: run make" >&2
			exit 1
		fi
	done
}

# rls ARGS...: rlshape in the gateway's namespace, where its pins are.
rls() {
	bed_gw "$RLS" "$@"
}

# log_count ERE: lines of the upstream's log ($UP_LOG) that match.
log_count() {
	local n
	n=$(grep -cE -- "$1" "$UP_LOG" 2>/dev/null) || true
	echo "${n:-0}"
}
