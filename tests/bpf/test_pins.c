// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Which maps of the one BPF object `rlshape load` pins (user/maps.c), on the object as built,
 * opened but never loaded (no root, nothing pinned): every state map gets DIR/its name, no
 * scratch map and no internal map (.rodata ...) gets a pin, every map user space opens by its
 * pin is a state map, and unpinning removes the pins of both kinds, a scratch map's an older
 * rlshape left included, and nothing else.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <bpf/libbpf.h>

#include "maps.h"
#include "rlshape.skel.h"

#define PIN_DIR "/sys/fs/bpf/rlshape/test-pins-never-created"

/* Plain files stand in for pins: unpinning is unlinking by name. */
static const char *const files[] = { "rls_counters", "rls_scratch", "rls_tc_scratch",
				     "prog_xdp" /* not a map: left */ };
#define NR_FILES (sizeof(files) / sizeof(files[0]))
static char tmp_dir[32];

/* Also after a failed check: the stand-ins and their directory go. */
static void remove_tmp_dir(void)
{
	char path[512];
	size_t i;

	if (!tmp_dir[0])
		return;
	for (i = 0; i < NR_FILES; i++) {
		snprintf(path, sizeof(path), "%s/%s", tmp_dir, files[i]);
		unlink(path);
	}
	rmdir(tmp_dir);
	tmp_dir[0] = '\0';
}

static int open_object(void **state)
{
	struct rlshape_bpf *skel = rlshape_bpf__open();

	if (!skel)
		return -1;
	*state = skel;
	return 0;
}

static int close_object(void **state)
{
	rlshape_bpf__destroy(*state);
	remove_tmp_dir();
	return 0;
}

static void test_state_maps_pinned_by_name_scratch_never(void **state)
{
	struct rlshape_bpf *skel = *state;
	size_t pinned = 0, scratch = 0;
	struct bpf_map *map;
	char want[512];

	assert_int_equal(rls_pin_state_maps(skel->obj, PIN_DIR), 0);
	bpf_object__for_each_map(map, skel->obj) {
		const char *path = bpf_map__pin_path(map);

		if (rls_map_is_state(map)) {
			snprintf(want, sizeof(want), "%s/%s", PIN_DIR, bpf_map__name(map));
			assert_non_null(path);
			assert_string_equal(path, want);
			pinned++;
		} else {
			if (path)
				fail_msg("%s would be pinned at %s", bpf_map__name(map), path);
			scratch += rls_map_is_scratch(map);
		}
	}
	/* The object's two work spaces, named so (bpf/lib/maps.h). */
	assert_true(rls_map_is_scratch(skel->maps.rls_scratch));
	assert_true(rls_map_is_scratch(skel->maps.rls_tc_scratch));
	assert_int_equal(scratch, 2);
	assert_int_equal(pinned, 26);
	assert_false(rls_map_is_state(skel->maps.rodata));
}

static void test_user_space_maps_are_state_maps(void **state)
{
	struct rlshape_bpf *skel = *state;

#define RLS_CHECK_STATE(name)                                              \
	if (!rls_map_is_state(skel->maps.rls_##name))                      \
		fail_msg("rls_" #name " is opened by its pin but never pinned");
	RLS_USER_MAPS(RLS_CHECK_STATE)
#undef RLS_CHECK_STATE
}

static void test_unpin_removes_state_and_stale_scratch_pins(void **state)
{
	struct rlshape_bpf *skel = *state;
	char path[512];
	size_t i;
	FILE *f;

	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/rls-test-pins.XXXXXX");
	assert_non_null(mkdtemp(tmp_dir));
	for (i = 0; i < NR_FILES; i++) {
		snprintf(path, sizeof(path), "%s/%s", tmp_dir, files[i]);
		f = fopen(path, "w");
		assert_non_null(f);
		fclose(f);
	}
	assert_int_equal(rls_unpin_maps(skel->obj, tmp_dir), 0);
	for (i = 0; i < NR_FILES; i++) {
		snprintf(path, sizeof(path), "%s/%s", tmp_dir, files[i]);
		if ((access(path, F_OK) == 0) != !strcmp(files[i], "prog_xdp"))
			fail_msg("%s is %s", path, access(path, F_OK) ? "gone" : "still there");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_maps_pinned_by_name_scratch_never),
		cmocka_unit_test(test_user_space_maps_are_state_maps),
		cmocka_unit_test(test_unpin_removes_state_and_stale_scratch_pins),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, open_object, close_object);
}
