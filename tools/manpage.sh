#!/usr/bin/env bash
# tools/manpage.sh RLSHAPE: rlshape(8) on stdout, made from the command's own --help texts, so
# that the man page says what the binary does (make install installs it).
set -euo pipefail

rls=${1:?usage: tools/manpage.sh PATH-TO-RLSHAPE}
esc() { # roff: a backslash is \e; a line starting with . or ' would be a request
	sed -e 's/\\/\\e/g' -e "s/^[.']/\\\\\\&&/"
}

cat <<'ROFF'
.TH RLSHAPE 8 "" "rlshape" "System Administration"
.SH NAME
rlshape \- enforce an LLM API provider's tier table on a Linux gateway, in the kernel (XDP/TC)
.SH SYNOPSIS
.B rlshape
.I COMMAND
.RI [ options ]
.SH DESCRIPTION
.nf
ROFF
"$rls" --help | esc
echo ".fi"
echo ".SH COMMANDS"
for cmd in $("$rls" --help | awk '/^Commands:/ { on = 1; next } on && !NF { exit } on { print $1 }'); do
	echo ".SS $cmd"
	echo ".nf"
	"$rls" "$cmd" --help | esc
	echo ".fi"
done
cat <<'ROFF'
.SH FILES
.TP
.I /etc/rlshape/tiers.json
the tier table the systemd units load
.TP
.I /sys/fs/bpf/rlshape/IFACE/
the pinned programs and maps of each interface (root's alone)
.SH SYSTEMD
.B rlshape-load@IFACE.service
loads the table at boot (reload: load it again);
.B rlshape-daemon@IFACE.service
settles token usage and serves Prometheus metrics on http://127.0.0.1:9473/metrics
(Type=notify; reload: SIGHUP, which loads the table again).
.SH SEE ALSO
.BR bpftool (8),
.BR systemctl (1),
.BR prometheus (1)
ROFF
