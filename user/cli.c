// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"
#include "maps.h"

void rls_error(const char *fmt, ...)
{
	va_list ap;

	fputs("rlshape: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int rls_choose_dev(const char *given, char *dev, size_t len)
{
	struct dirent *e;
	int found = 0;
	DIR *d;

	if (given) {
		snprintf(dev, len, "%s", given);
		return 0;
	}
	d = opendir(RLS_PIN_ROOT);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' || e->d_type != DT_DIR)
			continue;
		if (found++ == 0)
			snprintf(dev, len, "%s", e->d_name);
	}
	if (d)
		closedir(d);
	if (found == 1)
		return 0;
	if (found == 0)
		rls_error("rlshape is not loaded on any interface; load it with `rlshape load FILE --dev IFACE`");
	else
		rls_error("rlshape is loaded on %d interfaces: say which with --dev IFACE", found);
	return -1;
}
