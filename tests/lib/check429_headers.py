"""The headers every 429 of rlshape carries, whatever its kind: for the suites' check429.py."""
import re


def check_id_and_retry(hdr, errs):
    """x-request-id is req_ and 16 hex digits; x-should-retry is false past a minute's wait."""
    rid = hdr.get("x-request-id")
    if rid is None or not re.fullmatch(r"req_[0-9a-f]{16}", rid):
        errs.append("x-request-id %r, want req_ and 16 lower-case hex digits" % rid)
    wait_ms = hdr.get("retry-after-ms", "")
    if wait_ms.isdigit():
        want = "false" if int(wait_ms) > 60000 else "true"
        if hdr.get("x-should-retry") != want:
            errs.append("x-should-retry %r for retry-after-ms %s, want %r"
                        % (hdr.get("x-should-retry"), wait_ms, want))
