#!/usr/bin/env python3
"""bench/compare.sh's report: medians over rounds, a Markdown section, a JSON file.

Reads the runs compare.sh measured (one JSON object per wrk run, runs.jsonl) and prints the
Markdown section on stdout. Numbers are reported as measured; odd ones get a note, never a
failure.
"""
import argparse
import json
import statistics
import sys

# variant -> (label, proxy, limiter, kind, baseline variant)
VARIANTS = {
    "nginx_plain": ("nginx, no limiter", "nginx", None, "latency", None),
    "rlshape_huge": ("rlshape (XDP) + nginx", "nginx", "rlshape", "latency", "nginx_plain"),
    "nginx_huge": ("nginx limit_req", "nginx", "nginx", "latency", "nginx_plain"),
    "haproxy_plain": ("HAProxy, no limiter", "haproxy", None, "latency", None),
    "haproxy_huge": ("HAProxy stick table", "haproxy", "haproxy", "latency", "haproxy_plain"),
    "rlshape_tiny": ("rlshape (XDP) + nginx", "nginx", "rlshape", "reject", None),
    "nginx_tiny": ("nginx limit_req", "nginx", "nginx", "reject", None),
    "haproxy_tiny": ("HAProxy stick table", "haproxy", "haproxy", "reject", None),
}
LIMITERS = [("rlshape", "rlshape"), ("nginx", "nginx"), ("haproxy", "HAProxy")]
MODES = [("keepalive", "keep-alive"), ("close", "new per request")]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def per_run(r):
    """Derived numbers of one wrk run."""
    d = r["duration_us"] / 1e6
    out = {
        "requests_per_s": r["requests"] / d,
        "ok_per_s": r["ok"] / d,
        "rejected_per_s": r["r429"] / d,
        "cpu_s": r["cpu_s"],
        # The CPU window is the whole wrk command (start-up included), not wrk's own duration.
        "machine_busy": r["cpu_s"] / (r["wall_us"] / 1e6 * r["cpus"]),
        "cpu_s_per_1k_rejected": r["cpu_s"] / (r["r429"] / 1000) if r["r429"] else None,
        "cpu_s_per_1k_requests": r["cpu_s"] / (r["requests"] / 1000) if r["requests"] else None,
        "p50_us": r["p50_us"],
        "p99_us": r["p99_us"],
        "upstream_per_request": r["upstream_requests"] / r["requests"] if r["requests"] else None,
        "gateway_accepts_per_request": (r["gateway_accepts"] / r["requests"]
                                        if r["requests"] else None),
        "client_retransmits_per_request": (r["client_retransmits"] / r["requests"]
                                           if r["requests"] else None),
    }
    return out


def fmt(v, digits=0, suffix=""):
    if v is None:
        return "n/a"
    if digits == 0:
        return f"{v:,.0f}{suffix}"
    return f"{v:,.{digits}f}{suffix}"


def ratio(a, b, digits=2):
    if a is None or b is None or b <= 0 or a < 0:
        return "n/a"
    return f"{a / b:.{digits}f}×"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--json", default="")
    for k in ("profile", "key", "kernel", "nginx", "haproxy", "wrk", "loadavg"):
        ap.add_argument("--" + k, default="")
    for k in ("rounds", "duration", "threads", "connections", "clk-tck", "cpus"):
        ap.add_argument("--" + k, type=int, required=True)
    a = ap.parse_args()

    with open(a.runs) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    for r in runs:
        r["cpu_s"] = r["cpu_jiffies"] / r["clk_tck"]
        r["cpus"] = a.cpus

    # Medians per (variant, mode), each metric over the rounds on its own.
    summary = {}
    for v in VARIANTS:
        summary[v] = {}
        for m, _ in MODES:
            rs = [r for r in runs if r["variant"] == v and r["connections_mode"] == m]
            if not rs:
                print(f"report: no runs of {v} ({m})", file=sys.stderr)
                return 1
            derived = [per_run(r) for r in rs]
            s = {k: med([d[k] for d in derived]) for k in derived[0]}
            s["rounds"] = len(rs)
            for k in ("requests", "ok", "r429", "other", "err_connect", "err_read",
                      "err_write", "err_timeout", "upstream_requests", "gateway_accepts",
                      "client_retransmits"):
                s[k + "_total"] = sum(r[k] for r in rs)
            if VARIANTS[v][2] == "rlshape":
                s["xdp_requests_total"] = sum(r["xdp_requests"] or 0 for r in rs)
                s["xdp_replies_429_total"] = sum(r["xdp_replies_429"] or 0 for r in rs)
            summary[v][m] = s

    # What each limiter adds to its own baseline (difference and ratio of the medians).
    for v, (_, _, _, kind, base) in VARIANTS.items():
        if not base:
            continue
        for m, _ in MODES:
            s, b = summary[v][m], summary[base][m]
            for p in ("p50_us", "p99_us"):
                s["added_" + p] = s[p] - b[p]
                s["ratio_" + p] = s[p] / b[p] if b[p] else None

    notes = []
    for v, (label, _, _, kind, _) in VARIANTS.items():
        for m, mlabel in MODES:
            s = summary[v][m]
            if kind == "latency" and (s["r429_total"] or s["other_total"]):
                notes.append(f"{label} ({mlabel}), admitting run: {s['r429_total']} 429s and "
                             f"{s['other_total']} other non-2xx answers among "
                             f"{s['requests_total']} requests.")
            if kind == "reject" and s["ok_total"] > a.rounds:
                notes.append(f"{label} ({mlabel}), rejecting run: {s['ok_total']} requests "
                             "were admitted (expected at most one per round).")
            if kind == "reject" and s["upstream_requests_total"] > a.rounds * 2:
                notes.append(f"{label} ({mlabel}), rejecting run: the upstream saw "
                             f"{s['upstream_requests_total']} requests.")
            errs = {k: s[k + "_total"] for k in ("err_connect", "err_read", "err_write",
                                                  "err_timeout") if s[k + "_total"]}
            if errs:
                notes.append(f"{label} ({mlabel}): wrk socket errors " +
                             ", ".join(f"{k[4:]} {n}" for k, n in errs.items()) + ".")
            # wrk stops reading with up to one request in flight per connection.
            slack = a.connections * a.rounds
            if "xdp_requests_total" in s and not (
                    0 <= s["xdp_requests_total"] - s["requests_total"] <= slack):
                notes.append(f"{label} ({mlabel}): XDP parsed {s['xdp_requests_total']} "
                             f"requests, wrk counted {s['requests_total']} answers.")
            if "xdp_replies_429_total" in s and not (
                    0 <= s["xdp_replies_429_total"] - s["r429_total"] <= slack):
                notes.append(f"{label} ({mlabel}): XDP sent {s['xdp_replies_429_total']} 429s, "
                             f"wrk counted {s['r429_total']}.")

    out = []
    w = out.append
    rounds_txt = (f"Figures are medians of {a.rounds} rounds (each metric on its own)."
                  if a.rounds > 1 else "Figures are from a single round.")
    w("## rlshape vs nginx `limit_req` vs HAProxy stick table")
    w("")
    w(f"One run of `bench/compare.sh{'' if a.profile == 'full' else ' --' + a.profile}` "
      f"on {a.cpus} CPUs, Linux {a.kernel}; nginx {a.nginx}, HAProxy {a.haproxy}, "
      f"wrk {a.wrk}. Client, gateway and upstream are network namespaces on this one "
      "machine, joined by veth pairs. The gateway runs the proxy on its client-side address, "
      "port 8000 (2 workers or threads, keep-alive connections to the upstream "
      "`tools/mock-upstream`). Three limiters answer over-limit requests with 429. "
      "**rlshape** is XDP on the gateway's client-facing veth, in front of a plain nginx "
      "proxy. **nginx** is `limit_req` keyed on the Authorization header, with "
      "`limit_req_status 429`. **HAProxy** is a stick table of `http_req_rate` keyed on the "
      "Authorization header, with `http-request deny deny_status 429`.")
    w("")
    w(f"Every run is `wrk -t {a.threads} -c {a.connections} -d {a.duration}s` with the same "
      "POST of an OpenAI chat request and one API key. It is done once over keep-alive "
      "connections and once with `Connection: close` (a new connection per request). 429s "
      "are counted exactly by a Lua `response()` hook. A *rejecting* run gives the key a tiny "
      "limit (rlshape `rpd 1`, nginx `rate=1r/m`, HAProxy `http_req_rate(60s) gt 1`), so "
      "every request after the first is rejected. An *admitting* run gives it a huge one, so "
      "every request goes through the limiter to the upstream. CPU is the busy time of the "
      "whole machine over the run, from /proc/stat "
      "(user+nice+system+irq+softirq+steal): wrk, proxy, upstream and kernel together, and "
      "anything else running on the machine; *busy* is that time over the run's CPU "
      f"capacity. {rounds_txt}")
    w("")
    w("How to read it: wrk is closed-loop, so every run keeps the machine busy (client, proxy "
      "and upstream share its CPUs). CPU per 1k requests is then close to CPUs / rate, and "
      "latencies include queueing (p50 ≈ connections / rate), so they move with throughput "
      "and with whatever else runs on the machine"
      + (f" (load average {a.loadavg} when the run started)" if a.loadavg else "") + ". "
      "On a keep-alive connection rlshape's 429 keeps the connection (XDP answers and renumbers "
      "the connection's segments from then on); a request that asks to close (`Connection: "
      "close`, as wrk sends in the new-connection runs) gets one that closes. *accepts per "
      "request* and *client retransmits per request* show what each 429 costs the client.")
    w("")
    w("### Rejecting: every request is over the limit")
    w("")
    w("| connections | limiter | 429/s | CPU s per 1k 429s | busy | p50 of a 429 (µs) | "
      "p99 of a 429 (µs) | accepts per request | client retransmits per request | "
      "reached upstream |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for m, mlabel in MODES:
        for v in ("rlshape_tiny", "nginx_tiny", "haproxy_tiny"):
            s = summary[v][m]
            w(f"| {mlabel} | {VARIANTS[v][0]} | {fmt(s['rejected_per_s'])} | "
              f"{fmt(s['cpu_s_per_1k_rejected'], 3)} | {fmt(s['machine_busy'] * 100)}% | "
              f"{fmt(s['p50_us'])} | "
              f"{fmt(s['p99_us'])} | {fmt(s['gateway_accepts_per_request'], 2)} | "
              f"{fmt(s['client_retransmits_per_request'], 2)} | "
              f"{s['upstream_requests_total']} |")
    w("")
    w("*accepts per request*: TCP connections the gateway's kernel accepted, per request. "
      "*client retransmits*: TCP segments the client's kernel sent again, per request. "
      "*reached upstream*: requests the upstream logged, over all rounds.")
    w("")
    w("### Admitting: every request goes through the limiter")
    w("")
    w("| connections | gateway | req/s | CPU s per 1k requests | busy | p50 (µs) | p99 (µs) | "
      "added p50 | added p99 |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for m, mlabel in MODES:
        for v in ("nginx_plain", "rlshape_huge", "nginx_huge", "haproxy_plain",
                  "haproxy_huge"):
            s = summary[v][m]
            if VARIANTS[v][4]:
                add50 = f"{s['added_p50_us']:+,.0f} µs ({fmt(s['ratio_p50_us'], 2)}×)"
                add99 = f"{s['added_p99_us']:+,.0f} µs ({fmt(s['ratio_p99_us'], 2)}×)"
            else:
                add50 = add99 = "baseline"
            w(f"| {mlabel} | {VARIANTS[v][0]} | {fmt(s['requests_per_s'])} | "
              f"{fmt(s['cpu_s_per_1k_requests'], 3)} | {fmt(s['machine_busy'] * 100)}% | "
              f"{fmt(s['p50_us'])} | "
              f"{fmt(s['p99_us'])} | {add50} | {add99} |")
    w("")
    w("*added*: the limiter's median minus its own baseline's median (rlshape and nginx "
      "over plain nginx, HAProxy over plain HAProxy), and their ratio.")
    w("")
    w("### Between the limiters")
    w("")
    w("| connections | measure | rlshape | nginx | HAProxy | nginx / rlshape | "
      "HAProxy / rlshape |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    comparison = {}
    for m, mlabel in MODES:
        rows = [
            ("429/s", "rejected_per_s", "tiny", 0),
            ("CPU s per 1k 429s", "cpu_s_per_1k_rejected", "tiny", 3),
            ("admitted p50 (µs)", "p50_us", "huge", 0),
            ("admitted p99 (µs)", "p99_us", "huge", 0),
            ("added p50 (µs)", "added_p50_us", "huge", 0),
            ("added p99 (µs)", "added_p99_us", "huge", 0),
        ]
        comparison[m] = {}
        for title, key, setting, digits in rows:
            vals = [summary[f"{lim}_{setting}"][m][key] for lim, _ in LIMITERS]
            comparison[m][key] = dict(zip([lim for lim, _ in LIMITERS], vals))
            if key.startswith("added"):
                # A difference near zero makes a ratio meaningless.
                r1 = r2 = "–"
            else:
                r1, r2 = ratio(vals[1], vals[0]), ratio(vals[2], vals[0])
            w(f"| {mlabel} | {title} | " + " | ".join(fmt(x, digits) for x in vals) +
              f" | {r1} | {r2} |")
    w("")
    if notes:
        w("Notes on the numbers:")
        w("")
        for n in notes:
            w(f"- {n}")
        w("")
    sys.stdout.write("\n".join(out))

    if a.json:
        doc = {
            "benchmark": "rlshape vs nginx limit_req vs haproxy stick table",
            "params": {"profile": a.profile, "rounds": a.rounds, "duration_s": a.duration,
                       "wrk_threads": a.threads, "wrk_connections": a.connections,
                       "api_key": a.key, "clk_tck": a.clk_tck},
            "environment": {"cpus": a.cpus, "kernel": a.kernel, "nginx": a.nginx,
                            "haproxy": a.haproxy, "wrk": a.wrk,
                            "loadavg_at_start": a.loadavg},
            "variants": {v: {"label": l, "proxy": p, "limiter": lim, "kind": k,
                             "baseline": b} for v, (l, p, lim, k, b) in VARIANTS.items()},
            "summary": summary,
            "comparison": comparison,
            "notes": notes,
            "runs": runs,
        }
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
