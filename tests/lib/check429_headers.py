"""What every suite's check429.py checks in a saved 429 of rlshape, whatever its kind.

Each suite keeps only what its kind of 429 adds (which limit headers, which wait); reading the
answer, the JSON error body and the headers every 429 carries are checked here, once.
"""
import json
import re
import sys


def read_429(path, errs, last_wins=False):
    """The saved answer at path as (headers by lower-case name, body, whether the head ended).

    A status line other than HTTP/1.1 429 goes to errs. A repeated header keeps its first value,
    or its last with last_wins.
    """
    raw = open(path, "rb").read().decode("utf-8", "replace")
    head, sep, body = raw.partition("\r\n\r\n")
    lines = head.split("\r\n")
    if lines[0] != "HTTP/1.1 429 Too Many Requests":
        errs.append("status line %r" % lines[0])
    hdr = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if last_wins:
            hdr[name.strip().lower()] = value.strip()
        else:
            hdr.setdefault(name.strip().lower(), value.strip())
    return hdr, body, bool(sep)


def need(hdr, errs, name, pattern):
    """The header's value when it is there and matches pattern whole, else None (and an error)."""
    value = hdr.get(name)
    if value is None:
        errs.append("missing " + name)
    elif not re.fullmatch(pattern, value):
        errs.append("%s: %r does not match %s" % (name, value, pattern))
    else:
        return value
    return None


def check_waits_agree(ra, ra_ms, reset, reset_name, errs):
    """retry-after is retry-after-ms rounded up to seconds, and the reset header says the same."""
    if ra and ra_ms and int(ra) != (int(ra_ms) + 999) // 1000:
        errs.append("retry-after %s disagrees with retry-after-ms %s" % (ra, ra_ms))
    if ra and reset and reset != ra + "s":
        errs.append("%s %s, retry-after %s" % (reset_name, reset, ra))


def check_length(length, body, errs):
    """content-length counts the body's bytes."""
    if length and int(length) != len(body.encode()):
        errs.append("content-length %s, body is %d bytes" % (length, len(body.encode())))


def check_error_body(body, errs, message, kind):
    """The body is OpenAI's rate-limit error object, with this message and type."""
    try:
        doc = json.loads(body)
    except ValueError as e:
        errs.append("body is not JSON (%s): %r" % (e, body))
    else:
        want = {"error": {"message": message, "type": kind, "param": None,
                          "code": "rate_limit_exceeded"}}
        if doc != want:
            errs.append("body %r" % doc)


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


def finish(hdr, errs):
    """Add the checks every 429 gets; print every error and exit 1 when there is one."""
    check_id_and_retry(hdr, errs)
    if errs:
        print("\n".join(errs))
        sys.exit(1)
