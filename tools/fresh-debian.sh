#!/usr/bin/env bash
# Does a fresh Debian 12 pass `make check` with nothing but the README's instructions?
# This machine has packages installed by hand over many sessions, so a green run here proves
# nothing about a new one. This script builds a minimal Debian 12 (bookworm) with debootstrap,
# puts a clone of one commit in it, and runs inside it what the README tells a new user to
# run. Too long for `make check` (a few hundred MB of packages); run it before a release.
#
#   tools/fresh-debian.sh [--keep] [--dir DIR] [--mirror URL] [COMMIT]
#       COMMIT: default HEAD of this checkout. DIR: an empty or absent directory, default a
#       new one under /var/tmp. --keep: keep DIR afterwards (to look around, or --enter it).
#   tools/fresh-debian.sh --enter DIR [COMMAND...]
#       a shell (or COMMAND) in a kept DIR, with the same mounts and environment.
#
# As root (debootstrap, chroot, mounts; the tests themselves need root). The chroot shares
# this kernel, so BPF and network namespaces work in it as on a fresh machine.
#
# What a new user is assumed to have, and nothing else: Debian 12's minimal system
# (debootstrap --variant=minbase), the source (git clone, done here, outside), and `make`,
# which the README's Quick start says to install first. Everything else must come from
# `make check` itself (tools/install-deps.sh). What this machine's network needs is copied
# in as well, since a fresh machine here has it too: the DNS resolver and any local CA
# certificates (an egress proxy's).
#
# Mounts are made in a mount namespace of their own (unshare), so none of them can leak
# onto this machine's, and they all go away with the last process inside. /sys is a new
# sysfs with no BPF filesystem on it, as on a fresh machine: install-deps mounts its own, so
# pins made inside never meet this machine's. /dev and /run are new too. The output is kept in a log beside DIR
# (DIR.log), which survives DIR's removal. The last line printed is make check's
# "N passed, N failed, N skipped"; the exit status is make check's.
set -euo pipefail

SUITE=bookworm
ROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SRC=/root/rlshape # where the clone sits inside; ../shared beside it, as for CI

usage() {
	sed -n '/^#   tools/,/^#$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

die() {
	echo "fresh-debian: $*" >&2
	exit 1
}

# The mounts of a fresh machine, made in the current (private) mount namespace, then CMD in
# the chroot with a root login's environment and nothing of this session's.
enter() {
	local dir=$1 name major minor
	shift
	# DIR a mount point of its own, so that the chroot's / is one, as a machine's is: `ip netns
	# exec` runs `mount --make-rslave /`, which fails on a plain directory.
	mount --bind "$dir" "$dir"
	mount -t proc proc "$dir/proc"
	mount -t sysfs sysfs "$dir/sys"
	# A /dev of its own, not this machine's: what runs inside (dpkg's scripts, the tests) can
	# then remove or replace a node without touching the host's.
	mount -t tmpfs -o mode=755,nosuid tmpfs "$dir/dev"
	local node
	for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
		IFS=: read -r name major minor <<<"$node"
		mknod -m 666 "$dir/dev/$name" c "$major" "$minor"
	done
	mkdir "$dir/dev/pts" "$dir/dev/shm"
	mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$dir/dev/pts"
	ln -s pts/ptmx "$dir/dev/ptmx"
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$dir/dev/shm"
	ln -s /proc/self/fd "$dir/dev/fd"
	ln -s /proc/self/fd/0 "$dir/dev/stdin"
	ln -s /proc/self/fd/1 "$dir/dev/stdout"
	ln -s /proc/self/fd/2 "$dir/dev/stderr"
	mount -t tmpfs -o mode=755 tmpfs "$dir/run" # ip netns add makes /run/netns in it
	exec chroot "$dir" /usr/bin/env -i HOME=/root PATH="$ROOT_PATH" CI=true \
		TERM="${TERM:-dumb}" "$@"
}

# Run CMD inside DIR in a new private mount namespace: when it ends, every mount is gone.
inside() {
	local dir=$1
	shift
	unshare --mount --propagation private -- "${BASH_SOURCE[0]}" --mounts-then-exec "$dir" "$@"
}

case ${1:-} in
--mounts-then-exec) # internal: the part of inside() that runs in the new namespace
	shift
	enter "$@"
	;;
--enter)
	[[ $# -ge 2 && -d $2/root ]] || die "--enter needs a directory a --keep run left"
	dir=$(cd "$2" && pwd)
	shift 2
	(($#)) || set -- /bin/bash -l
	inside "$dir" /bin/bash -c 'cd '"$SRC"' 2>/dev/null; exec "$@"' - "$@"
	exit
	;;
esac

keep=""
dir=""
mirror=""
commit=""
while (($#)); do
	case $1 in
	--keep) keep=1 ;;
	--dir)
		[[ $# -ge 2 ]] || usage
		dir=$2
		shift
		;;
	--mirror)
		[[ $# -ge 2 ]] || usage
		mirror=$2
		shift
		;;
	-h | --help) usage ;;
	-*) usage ;;
	*)
		[[ -z $commit ]] || usage
		commit=$1
		;;
	esac
	shift
done

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, chroot, mounts, and the tests)"
repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
sha=$(git -C "$repo" rev-parse --verify "${commit:-HEAD}^{commit}") ||
	die "no commit '${commit:-HEAD}' in $repo"
# shared/ lies beside the main checkout (CI gets a copy there too); a worktree's
# --git-common-dir is the main checkout's .git.
common=$(cd "$repo" && cd "$(git rev-parse --git-common-dir)/.." && pwd)
shared=""
for d in "$repo/../shared" "$common/../shared"; do
	[[ -d $d ]] && shared=$(cd "$d" && pwd) && break
done
[[ -n $shared ]] || echo "fresh-debian: no ../shared beside $repo: 20_examples will fail" >&2

# The same Debian mirror as this machine's apt sources, unless given.
if [[ -z $mirror ]]; then
	mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -Eo 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ' || true)
	mirror=${mirror:-http://deb.debian.org/debian}
fi
mirror=${mirror%/}

if ! command -v debootstrap >/dev/null; then
	echo "fresh-debian: installing debootstrap on this machine"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

if [[ -n $dir ]]; then
	mkdir -p "$dir"
	[[ -z $(ls -A "$dir") ]] || die "$dir is not empty"
	dir=$(cd "$dir" && pwd)
else
	dir=$(mktemp -d /var/tmp/rlshape-fresh.XXXXXX)
fi
chmod 755 "$dir" # the chroot's /: mktemp's 0700 would shut out apt's _apt, nginx's www-data
log=$dir.log
: >"$log"

# The long steps run in the background and are waited for, so that a signal runs cleanup at
# once instead of after them (bash defers traps until a foreground command ends). CMD's
# output goes to the log, and with --show to the terminal too; its status is returned.
job=""
run_job() {
	local show="" rcfile=$dir.rc rc from
	[[ $1 != --show ]] || { show=1 && shift; }
	from=$(($(stat -c %s "$log") + 1))
	{
		rc=0
		"$@" >>"$log" 2>&1 || rc=$?
		echo "$rc" >"$rcfile"
	} &
	job=$!
	if [[ -n $show ]]; then
		tail -c "+$from" --pid="$job" -f "$log" &
		wait "$!" || true
	fi
	wait "$job" || true
	job=""
	rc=$(cat "$rcfile" 2>/dev/null || echo 1)
	rm -f "$rcfile"
	return "$rc"
}

# Every process whose root is DIR: whatever a failed run left behind inside.
procs_inside() {
	local p
	for p in /proc/[0-9]*; do
		[[ $(readlink "$p/root" 2>/dev/null) == "$dir" ]] && echo "${p#/proc/}"
	done
	return 0
}

cleanup() {
	local rc=$? pids
	trap - EXIT INT TERM
	[[ -z $job ]] || kill -TERM "$job" 2>/dev/null || true
	pids=$(procs_inside)
	if [[ -n $pids ]]; then
		echo "fresh-debian: ending what was left running inside: $(echo $pids)" >&2
		# shellcheck disable=SC2086 # a list of pids
		kill -TERM $pids 2>/dev/null || true
		sleep 2
		pids=$(procs_inside)
		# shellcheck disable=SC2086
		[[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
	fi
	if [[ -n $keep ]]; then
		echo "fresh-debian: kept $dir (tools/fresh-debian.sh --enter $dir); log $log"
	elif findmnt -rn -o TARGET | grep -qF "$dir"; then
		# Never rm -rf across a live mount of /sys or /dev.
		echo "fresh-debian: something is still mounted under $dir; not removing it:" >&2
		findmnt -rn -o TARGET | grep -F "$dir" >&2
	else
		rm -rf --one-file-system "$dir"
		echo "fresh-debian: removed $dir; log $log"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "fresh-debian: $*" | tee -a "$log"; }

say "commit $sha; debootstrap --variant=minbase $SUITE from $mirror into $dir"
t0=$(date +%s)
run_job unshare --mount --propagation private \
	debootstrap --variant=minbase "$SUITE" "$dir" "$mirror" >>"$log" 2>&1 ||
	die "debootstrap failed; see $log"
t1=$(date +%s)
say "debootstrap took $((t1 - t0)) s; $(du -sh --one-file-system "$dir" | cut -f1)"

# Debian 12's stock sources, from the same mirror.
security=${mirror%/debian}/debian-security
[[ $security != "$mirror" ]] || security=http://deb.debian.org/debian-security
rm -f "$dir/etc/apt/sources.list"
cat >"$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# This machine's network: its resolver, and the local CAs that its egress proxy needs (they
# take effect once ca-certificates is installed, which runs update-ca-certificates).
cp /etc/resolv.conf "$dir/etc/resolv.conf"
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
	mkdir -p "$dir/usr/local/share/ca-certificates"
	cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/"
fi

git clone -q --no-local "$repo" "$dir$SRC"
git -C "$dir$SRC" -c advice.detachedHead=false checkout -q "$sha"
if [[ -n $shared ]]; then
	cp -r "$shared" "$dir${SRC%/*}/shared"
	chmod -R a-w "$dir${SRC%/*}/shared" # CI's copy has no write bits
fi

# What the README says a new user runs: make first (Quick start), then make check.
say "running inside: apt-get install make; make check"
t2=$(date +%s)
rc=0
run_job --show inside "$dir" /bin/bash -c '
	set -e
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make >/dev/null
	cd '"$SRC"'
	before=$(dpkg-query -W -f="\${Package}\n" | sort)
	rc=0
	make check || rc=$?
	echo "fresh-debian: packages make check installed (with their dependencies):" \
		$(comm -13 <(echo "$before") <(dpkg-query -W -f="\${Package}\n" | sort) | wc -l)
	exit $rc
' || rc=$?
t3=$(date +%s)
say "make check took $((t3 - t2)) s (with install-deps and the build), exit $rc"
say "$(grep -m1 '^install-deps:' "$log" || echo 'install-deps printed nothing')"
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -1)
say "${summary:-no summary line: make check stopped before tests/run-all.sh ended}"
exit "$rc"
