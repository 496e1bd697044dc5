# rlshape: XDP/TC rate limiter for LLM inference gateways.
#
#   make            build the BPF objects, skeletons, the rlshape command and the tools
#   make check      install what is missing (Debian), build, run every test suite
#   make demo       install what is missing, run the namespace demo, clean up
#   make fuzz       run every libFuzzer harness for FUZZ_SECONDS each (default 60)
#   make install    PREFIX=/usr/local DESTDIR=: the command, its man page, systemd units, a table
#   make clean

BUILD    ?= build
CLANG    ?= clang
BPFTOOL  ?= bpftool
CC       ?= gcc

ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')

CFLAGS     ?= -O2 -g
CFLAGS     += -std=gnu11 -Wall -Wextra -Werror -Iinclude -I$(BUILD) -Iuser
# SANITIZE=1: user space and tests built with UBSan and ASan (make check-sanitize uses it).
ifdef SANITIZE
CFLAGS     += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
endif
# libmicrohttpd: the daemon's /metrics endpoint (user/metrics_http.c), in a thread of its own.
MHD_CFLAGS := $(shell pkg-config --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS   := $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
CFLAGS     += $(MHD_CFLAGS)
# hiredis: the daemon's fleet thread (user/fleet.c).
LDLIBS     := -lbpf -lelf -lz -ljansson $(MHD_LIBS) -lhiredis -lpthread
# libmnl: the fq qdisc shaping needs, over rtnetlink (user/qdisc.c).
LDLIBS     += -lmnl
BPF_CFLAGS := -O2 -g -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) \
              -Wall -Wextra -Werror -Wno-unused-parameter -Iinclude -Ibpf -I$(BUILD)

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
# bpf/*.c: the entry files bpf/rlshape.bpf.c includes, one per program.
BPF_HDRS  := $(wildcard bpf/lib/*.h) $(filter-out %.bpf.c,$(wildcard bpf/*.c)) $(wildcard include/*.h)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))

USER_SRCS := $(wildcard user/*.c)
USER_HDRS := $(wildcard user/*.h) $(wildcard include/*.h)
USER_OBJS := $(patsubst user/%.c,$(BUILD)/user/%.o,$(USER_SRCS))
# Everything but main(): what the unit tests link against.
LIB_OBJS  := $(filter-out $(BUILD)/user/main.o,$(USER_OBJS))

TOOL_SRCS := $(wildcard tools/*.c)
TOOLS     := $(patsubst tools/%.c,$(BUILD)/tools/%,$(TOOL_SRCS))

BENCH_SRCS := $(wildcard bench/*.c)
BENCHES    := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

TEST_SRCS := $(wildcard tests/unit/*.c) $(wildcard tests/bpf/*.c)
TESTS     := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS))

.PHONY: all deps check demo bench bench-quick clean sanitized-tests fuzzers fuzz
.DELETE_ON_ERROR:
# BPF objects and skeletons are outputs in their own right: tests attach the objects.
.SECONDARY:

all: $(BPF_OBJS) $(BUILD)/bpf_lib_headers.ok $(BUILD)/rlshape $(TOOLS) $(TESTS) $(BENCHES)

deps:
	@tools/install-deps.sh

# The unit and BPF suites run twice: as built, and built with ASan and UBSan in a tree of their
# own (SAN_BUILD), where undefined behaviour or a bad access fails the suite.
SAN_BUILD ?= $(BUILD)/sanitized

# The builds use every CPU; so do the suites that can run side by side (tests/run-all.sh).
NPROC := $(shell nproc 2>/dev/null || echo 1)

check: deps
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@$(MAKE) --no-print-directory -j$(NPROC) BUILD=$(SAN_BUILD) SANITIZE=1 sanitized-tests
	@$(MAKE) --no-print-directory -j$(NPROC) fuzzers
	@RLS_SANITIZED_BUILD=$(SAN_BUILD) tests/run-all.sh

sanitized-tests: $(TESTS)

demo: deps
	@$(MAKE) --no-print-directory $(BPF_OBJS) $(BUILD)/rlshape $(TOOLS)
	@tools/demo.sh $(VENDOR)

# Benchmarks: measured, never pass/fail. bench-quick is the short look; check runs a smoke test.
bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh

bench-quick: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh --quick

$(BUILD) $(BUILD)/user $(BUILD)/tools $(BUILD)/tests/unit $(BUILD)/tests/bpf $(BUILD)/bench:
	@mkdir -p $@

# CO-RE: types come from the running kernel's BTF.
$(BUILD)/vmlinux.h: | $(BUILD)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) $(BUILD)/vmlinux.h | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# Each bpf/lib header compiles alone: it includes what it uses, whatever was included before it
# (-Wno-unused-function: alone, a header's bpf_loop() callbacks have no caller).
BPF_LIB_HDRS := $(wildcard bpf/lib/*.h)
$(BUILD)/bpf_lib_headers.ok: $(BPF_HDRS) $(BUILD)/vmlinux.h | $(BUILD)
	@for h in $(BPF_LIB_HDRS); do \
		echo "#include \"$$h\"" | $(CLANG) $(BPF_CFLAGS) -I. -Wno-unused-function \
			-fsyntax-only -x c - || { echo "$$h does not compile alone" >&2; exit 1; }; \
	done
	@touch $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@

$(BUILD)/user/%.o: user/%.c $(USER_HDRS) $(SKELS) | $(BUILD)/user
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/rlshape: $(USER_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tools/%: tools/%.c $(wildcard tools/*.h) $(USER_HDRS) | $(BUILD)/tools
	$(CC) $(CFLAGS) $< -o $@ -lpthread

$(BUILD)/tests/unit/%: tests/unit/%.c $(wildcard tests/lib/*.h) $(LIB_OBJS) $(USER_HDRS) \
                      | $(BUILD)/tests/unit
	$(CC) $(CFLAGS) $< $(LIB_OBJS) -o $@ $(LDLIBS) -lcmocka

$(BUILD)/tests/bpf/%: tests/bpf/%.c $(wildcard tests/bpf/*.h) $(LIB_OBJS) $(USER_HDRS) $(SKELS) | $(BUILD)/tests/bpf
	$(CC) $(CFLAGS) $< $(LIB_OBJS) -o $@ $(LDLIBS) -lcmocka -lpthread

# The HTTP floor (bench/floor/): a BPF program built only for the benchmarks, which report
# rlshape's costs as ratios to it.
FLOOR_SKEL := $(BUILD)/http_floor.skel.h

$(BUILD)/http_floor.bpf.o: bench/floor/http_floor.bpf.c bench/floor/http_floor.h $(BPF_HDRS) $(BUILD)/vmlinux.h | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -Ibench/floor -c $< -o $@

# The benchmarks load the programs through the BPF suites' prog_env.h (one copy of that code).
$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h) $(wildcard tests/bpf/*.h) $(LIB_OBJS) $(USER_HDRS) \
                  $(SKELS) $(FLOOR_SKEL) | $(BUILD)/bench
	$(CC) $(CFLAGS) -Ibench/floor $< $(LIB_OBJS) -o $@ $(LDLIBS) -lpthread

# ---- libFuzzer harnesses (fuzz/*.c; fuzz/run.sh runs them) ----
# The user-space code they drive is built again with clang and coverage instrumentation, in a
# tree of its own, so the fuzzer sees its branches and ASan/UBSan check it. A harness that
# needs more (libbpf, skeletons, root) gets a rule of its own below the pattern rule.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g -std=gnu11 -Wall -Wextra -Werror -Iinclude -I$(BUILD) -Iuser $(FUZZ_SAN)
FUZZ_HARNESSES := $(patsubst fuzz/%.c,%,$(wildcard fuzz/*.c))
FUZZERS      := $(patsubst %,$(BUILD)/fuzz/%,$(FUZZ_HARNESSES))
# What the user-space harnesses link: the parsers and the settlement, nothing that needs BPF.
FUZZ_OBJS    := $(patsubst %,$(BUILD)/fuzz/obj/%.o,tiers item_set sha256_file usage settle import_csv)

fuzzers: $(FUZZERS)

fuzz: deps
	@$(MAKE) --no-print-directory fuzzers
	@BUILD=$(BUILD) fuzz/run.sh --seconds $(FUZZ_SECONDS) $(FUZZ_HARNESSES)

$(BUILD)/fuzz $(BUILD)/fuzz/obj:
	@mkdir -p $@

$(BUILD)/fuzz/obj/%.o: user/%.c $(USER_HDRS) | $(BUILD)/fuzz/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(BUILD)/fuzz/%: fuzz/%.c $(wildcard fuzz/*.h) $(FUZZ_OBJS) $(USER_HDRS) | $(BUILD)/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_OBJS) -o $@ -ljansson

# The packet fuzzer drives the XDP and TC programs (BPF_PROG_TEST_RUN, as root): it links
# libbpf, the skeletons and the BPF suites' harness, and the user-space objects as built.
$(BUILD)/fuzz/packet_stream: fuzz/packet_stream.c fuzz/packet_reference.h $(wildcard tests/bpf/*.h) \
                             $(LIB_OBJS) $(USER_HDRS) $(SKELS) | $(BUILD)/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Itests/bpf -fsanitize=fuzzer $< $(LIB_OBJS) -o $@ $(LDLIBS) -lcmocka

# ---- make install [PREFIX=/usr/local] [DESTDIR=] ----
# The BPF object is inside the binary (its skeleton), so the binary is all there is to run. The
# man page is made from the binary's own --help texts; the units name the installed paths. A
# tiers.json already installed is the operator's: it is never overwritten. It holds API keys:
# root's alone.
PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
UNITS      := rlshape-load@.service rlshape-daemon@.service

.PHONY: install
install: $(BUILD)/rlshape
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSCONFDIR)/rlshape
	install -m 0755 $(BUILD)/rlshape $(DESTDIR)$(SBINDIR)/rlshape
	tools/manpage.sh $(BUILD)/rlshape >$(DESTDIR)$(MANDIR)/man8/rlshape.8
	for u in $(UNITS); do \
		sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
			dist/systemd/$$u.in >$(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	[ -e $(DESTDIR)$(SYSCONFDIR)/rlshape/tiers.json ] || \
		install -m 0600 examples/tiers.json $(DESTDIR)$(SYSCONFDIR)/rlshape/tiers.json

clean:
	rm -rf $(BUILD)
