#!/usr/bin/env bash
# Running rlshape as a service: `make install`, its systemd units, and the daemon's side of
# systemd's notify protocol. What is asserted:
#   1. `make install DESTDIR=D PREFIX=/usr/local` installs exactly the binary, the man page
#      (every command's --help in it), the two units and a sample table (mode 0600: it holds
#      keys), and a second install keeps a table that is already there;
#   2. `systemd-analyze verify` passes on the units as installed (into a PREFIX under this
#      test's directory, so the paths they name exist), and fails on a unit naming a missing
#      binary (the check can fail);
#   3. where systemd is PID 1, the units run under it (systemd-run, in the bed's namespace):
#      started, ready, reloaded, stopped. Where it is not (a container), the test says so,
#      and checks what systemd would do by hand: each unit's own ExecStart, ExecReload and
#      CapabilityBoundingSet, read from the installed file, run with setpriv; the daemon says
#      READY=1, RELOADING=1 then READY=1 around a reload, STOPPING=1, and exits 0;
#   4. the capabilities are the ones needed: `rlshape load` fails without any one of them.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 36_service

for tool in systemd-analyze setpriv make; do
	if ! command -v "$tool" >/dev/null; then
		echo "36_service: $tool is missing (tools/install-deps.sh installs it)" >&2
		exit 1
	fi
done

bed_up
suite_upstream 8000

# ---- 1. make install ----------------------------------------------------------------------
D=$BED_DIR/destdir
out=$(make -s -C "$BED_REPO" BUILD="$BUILD_DIR" install DESTDIR="$D" PREFIX=/usr/local 2>&1) && st=0 || st=$?
tap_is "$st" 0 "make install DESTDIR=... PREFIX=/usr/local exits 0 ($out)"
files=$(cd "$D" && find . -type f -printf '%m %P\n' | sort | tr '\n' ';')
tap_is "$files" "600 etc/rlshape/tiers.json;644 usr/local/lib/systemd/system/rlshape-daemon@.service;644 usr/local/lib/systemd/system/rlshape-load@.service;644 usr/local/share/man/man8/rlshape.8;755 usr/local/sbin/rlshape;" \
	"installed: binary, man page, two units, the sample table (0600)"
tap_is "$(grep -c '/usr/local/sbin/rlshape ' "$D/usr/local/lib/systemd/system/"*.service | tr '\n' ' ')" \
	"$D/usr/local/lib/systemd/system/rlshape-daemon@.service:1 $D/usr/local/lib/systemd/system/rlshape-load@.service:2 " \
	"the units name the installed binary"
missing=""
for cmd in check load unload status stats import daemon; do
	usage=$("$RLS" "$cmd" --help | head -1)
	grep -qF -- "$usage" "$D/usr/local/share/man/man8/rlshape.8" || missing+=" $cmd"
done
tap_is "$missing" "" "the man page has every command's usage line"
tap_like "$(grep -c -- '--metrics-listen' "$D/usr/local/share/man/man8/rlshape.8")" '^[1-9]' \
	"the man page has the daemon's --metrics-listen"
echo '{"edited": true}' >"$D/etc/rlshape/tiers.json"
make -s -C "$BED_REPO" BUILD="$BUILD_DIR" install DESTDIR="$D" PREFIX=/usr/local >/dev/null 2>&1
tap_is "$(cat "$D/etc/rlshape/tiers.json")" '{"edited": true}' "a second install keeps the operator's table"

# ---- 2. systemd-analyze verify --------------------------------------------------------------
# Installed where the paths they name exist: a PREFIX (and SYSCONFDIR) under this test's dir.
P=$BED_DIR/prefix
make -s -C "$BED_REPO" BUILD="$BUILD_DIR" install PREFIX="$P" SYSCONFDIR="$P/etc" >/dev/null
UNITS=$P/lib/systemd/system
# An instance of each template (verify takes units, not templates): the bed's interface.
ln -s rlshape-load@.service "$UNITS/rlshape-load@$BED_GW_DEV.service"
ln -s rlshape-daemon@.service "$UNITS/rlshape-daemon@$BED_GW_DEV.service"
verify() { # UNIT...: systemd-analyze verify, with the installed man page findable
	(cd "$UNITS" && MANPATH=$P/share/man systemd-analyze verify "$@")
}
tap_ok "systemd-analyze verify passes on rlshape-load@$BED_GW_DEV.service and rlshape-daemon@$BED_GW_DEV.service" \
	verify "./rlshape-load@$BED_GW_DEV.service" "./rlshape-daemon@$BED_GW_DEV.service"
sed "s|$P/sbin/rlshape|$P/sbin/no-such-rlshape|" "$UNITS/rlshape-daemon@.service" >"$UNITS/broken@.service"
ln -s broken@.service "$UNITS/broken@x.service"
out=$(verify ./broken@x.service 2>&1) && st=0 || st=$?
tap_like "$st $out" '^[1-9].*no-such-rlshape' "... and fails on a unit whose binary is missing"

# ---- 3. the units' commands, as systemd runs them ------------------------------------------
unit_value() { # UNIT KEY: the value of KEY= in the installed template, %i made the interface
	sed -n "s/^$2=//p" "$UNITS/$1" | sed "s/%i/$BED_GW_DEV/g"
}
# setpriv's form of a CapabilityBoundingSet: -all,+bpf,+perfmon,...
bounding() { # UNIT
	local caps c out="-all"
	caps=$(unit_value "$1" CapabilityBoundingSet)
	for c in $caps; do
		c=${c#CAP_}
		out+=",+${c,,}"
	done
	echo "$out"
}
as_unit() { # UNIT COMMAND...: COMMAND with only the unit's capabilities, in the gateway's namespace
	local unit=$1
	shift
	bed_gw setpriv --bounding-set "$(bounding "$unit")" --inh-caps -all -- "$@"
}
tap_is "$(unit_value rlshape-load@.service CapabilityBoundingSet)" "CAP_BPF CAP_PERFMON CAP_NET_ADMIN" \
	"rlshape-load@.service keeps CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN"

# The load unit's ExecStart and ExecReload, with its capabilities.
read -ra start <<<"$(unit_value rlshape-load@.service ExecStart)"
out=$(as_unit rlshape-load@.service "${start[@]}" 2>&1) && st=0 || st=$?
tap_is "$st" 0 "rlshape-load@'s ExecStart with its capabilities loads the table ($out)"
read -ra reload <<<"$(unit_value rlshape-load@.service ExecReload)"
out=$(as_unit rlshape-load@.service "${reload[@]}" 2>&1) && st=0 || st=$?
tap_is "$st" 0 "rlshape-load@'s ExecReload with its capabilities loads it again ($out)"

# ---- 4. each capability is needed -------------------------------------------------------------
for cap in bpf perfmon net_admin; do
	set_without=$(bounding rlshape-load@.service | sed "s/,+$cap//")
	out=$(bed_gw setpriv --bounding-set "$set_without" --inh-caps -all -- "${start[@]}" 2>&1) && st=0 || st=$?
	tap_like "$st $out" '^1 rlshape: ' "without CAP_${cap^^}, rlshape load fails, saying why"
done

# ---- 3 (cont.). the daemon's notify protocol, under its unit's capabilities -------------------
NOTIFY_SOCK=$BED_DIR/notify.sock
cat >"$BED_DIR/notify.py" <<'PY'
import socket, sys
path, log = sys.argv[1:3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(log, "a") as out:
    while True:
        for line in s.recv(4096).decode().split("\n"):
            out.write(line + "\n")
            out.flush()
PY
NOTIFY_LOG=$BED_DIR/notify.log
: >"$NOTIFY_LOG"
bed_spawn bed_gw python3 "$BED_DIR/notify.py" "$NOTIFY_SOCK" "$NOTIFY_LOG"
bed_wait_file "$NOTIFY_SOCK" 10
read -ra dstart <<<"$(unit_value rlshape-daemon@.service ExecStart)"
bed_spawn bed_gw env NOTIFY_SOCKET="$NOTIFY_SOCK" setpriv \
	--bounding-set "$(bounding rlshape-daemon@.service)" --inh-caps -all -- "${dstart[@]}"
MAINPID=$BED_LAST_PID
DAEMON_LOG=$BED_LAST_LOG
notified() { # STATE N: the Nth line STATE has come
	(($(grep -cx -- "$1" "$NOTIFY_LOG") >= $2))
}
tap_ok "the daemon (its unit's ExecStart and capabilities) says READY=1" bed_wait_until 10 notified READY=1 1
code=$(bed_gw curl -sS --noproxy '*' -o /dev/null -w '%{http_code}' http://127.0.0.1:9473/metrics)
tap_is "$code" 200 "... and serves /metrics once ready"
reload_cmd=$(unit_value rlshape-daemon@.service ExecReload)
reload_cmd=${reload_cmd//\$MAINPID/$MAINPID}
read -ra reload <<<"$reload_cmd"
"${reload[@]}"
tap_ok "ExecReload ($reload_cmd): RELOADING=1" bed_wait_until 10 notified RELOADING=1 1
tap_ok "... then READY=1 again" bed_wait_until 30 notified READY=1 2
tap_like "$(cat "$DAEMON_LOG")" "reloaded $P/etc/rlshape/tiers.json" "... and the log says it reloaded the table"
kill -TERM "$MAINPID"
wait "$MAINPID" && st=0 || st=$?
tap_is "$st" 0 "SIGTERM (systemctl stop): the daemon exits 0"
tap_ok "... having said STOPPING=1" notified STOPPING=1 1
tap_diag "notify: $(tr '\n' ' ' <"$NOTIFY_LOG")"

# ---- 3 (cont.). under systemd itself, where it runs ------------------------------------------
pid1=$(cat /proc/1/comm)
if [[ $pid1 == systemd ]] && command -v systemd-run >/dev/null; then
	# Not run where this was written (PID 1 was not systemd there): a transient unit with the
	# daemon unit's command, type, reload and capabilities, in the bed's namespace.
	TUNIT=rlshape-test-$$.service
	stop_unit() {
		systemctl stop "$TUNIT" 2>/dev/null
		systemctl reset-failed "$TUNIT" 2>/dev/null
		bed_down
	}
	trap stop_unit EXIT
	tap_ok "systemd-run starts the daemon as a Type=notify unit" \
		systemd-run --unit="$TUNIT" --service-type=notify \
		-p NetworkNamespacePath="/var/run/netns/$BED_GW_NS" \
		-p CapabilityBoundingSet="$(unit_value rlshape-daemon@.service CapabilityBoundingSet)" \
		-p ExecReload="$(unit_value rlshape-daemon@.service ExecReload)" "${dstart[@]}"
	tap_ok "... it is active (ready)" bed_wait_until 20 systemctl is-active --quiet "$TUNIT"
	tap_ok "systemctl reload succeeds" systemctl reload "$TUNIT"
	tap_ok "systemctl stop stops it" systemctl stop "$TUNIT"
	tap_is "$(systemctl show -p Result --value "$TUNIT")" success "... cleanly (Result=success)"
else
	tap_skip "under systemd: the daemon started, ready, reloaded and stopped by systemctl" \
		"systemd is not PID 1 here (PID 1 is \"$pid1\": a container), so no unit can run; what the units run was checked above by hand"
fi
tap_done
