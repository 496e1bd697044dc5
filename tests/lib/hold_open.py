#!/usr/bin/env python3
"""hold_open.py FILE READY HELD: holds every open of FILE until this process ends.

A fanotify permission mark (FAN_OPEN_PERM) on FILE: each open(2) of it waits until this
process answers, and it never does, so the opener sits in open() for as long as the test
wants; the kernel allows every held open when the fanotify descriptor closes, that is when
this process exits (SIGTERM). It creates READY once the mark is in place and appends the pid
of each held opener to HELD. The test's stand-in for a table on a slow or hung file system:
no hook in rlshape, the real binary waits in the kernel.
"""
import ctypes
import os
import signal
import struct
import sys

FAN_CLOEXEC, FAN_CLASS_CONTENT = 0x1, 0x4
FAN_MARK_ADD, FAN_OPEN_PERM = 0x1, 0x10000
AT_FDCWD = -100
EVENT = struct.Struct("=IBBHQii")  # struct fanotify_event_metadata

path, ready, held = sys.argv[1:4]
libc = ctypes.CDLL(None, use_errno=True)
libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
                               ctypes.c_char_p]
fan = libc.fanotify_init(FAN_CLOEXEC | FAN_CLASS_CONTENT, os.O_RDONLY)
if fan < 0 or libc.fanotify_mark(fan, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD,
                                 path.encode()) < 0:
    sys.exit("hold_open: fanotify on %s: %s" % (path, os.strerror(ctypes.get_errno())))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
open(ready, "w").close()
kept = []  # each held open's file: kept open until the end, like the answer
while True:
    buf = os.read(fan, 4096)
    for off in range(0, len(buf), EVENT.size):
        _, _, _, _, mask, fd, pid = EVENT.unpack_from(buf, off)
        kept.append(fd)
        with open(held, "a") as f:
            f.write("%d\n" % pid)
