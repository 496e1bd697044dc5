#!/usr/bin/env bash
# The vendor examples: examples/<vendor>/ holds the vendor's rate-limit table as CSV,
# transcribed from its page in ../shared/seeds/, and the tiers.json that `rlshape import`
# makes of it. This suite (TAP; no root, no namespaces) checks, for each vendor:
#   - regenerating tiers.json from the CSV gives the committed file byte for byte (and twice
#     in a row the same bytes);
#   - `rlshape check` accepts it;
#   - its values agree with the seed text itself (not the CSV): every row for GMI Cloud and
#     SambaNova, every tier for Moonshot (whose saved page lost its cell separators, so each
#     row is rebuilt from the JSON and looked for in the seed), and spot checks of Model
#     Studio's long page: plain rows, merged cells, the image models' task-submission limits
#     and the retired models listed with 0.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh" # the TAP helpers and programs only
suite_programs 20_examples

EXAMPLES=$BED_REPO/examples
SEEDS=$(cd "$BED_REPO/.." && pwd)/shared/seeds

for seed in 000_6afe7aca4454e22b 001_deb61a3e5e92ab4f 002_07ec6d900f4d3295 003_da777cd72bc3f0b6; do
	if [[ ! -r $SEEDS/$seed.txt ]]; then
		echo "20_examples: $SEEDS/$seed.txt is missing: the seeds live in ../shared/seeds beside the checkout" >&2
		exit 1
	fi
done
if ! command -v python3 >/dev/null; then
	echo "20_examples: python3 is missing (tools/install-deps.sh installs it)" >&2
	exit 1
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# How each example is generated: the CSV's own header names, and the tier unknown clients
# get. examples/<vendor>/README.md shows the same command.
declare -A ARGS=(
	[gmi-cloud]='--model-column|Mode Name|--tier-column|Tier Name|--default-tier|Tier 1'
	[moonshot]='--tier-column|User Level|--default-tier|Tier0'
	[sambanova]='--model-column|Model ID|--default-tier|sambacloud'
	[model-studio]=''
)
VENDORS=(gmi-cloud moonshot sambanova model-studio)

# ---- regenerate, compare, check ----------------------------------------------------------

for v in "${VENDORS[@]}"; do
	dir=$EXAMPLES/$v
	args=()
	[[ -z ${ARGS[$v]} ]] || IFS='|' read -r -a args <<<"${ARGS[$v]}"
	out=$TMP/$v.json
	tap_ok "$v: rlshape import $v.csv${args[*]:+ ${args[*]}} succeeds" \
		"$RLS" import "$dir/$v.csv" "${args[@]}" -o "$out"
	if cmp -s "$out" "$dir/tiers.json"; then
		tap_ok "$v: the regenerated tiers.json is byte-identical to the committed one" true
	else
		tap_ok "$v: the regenerated tiers.json is byte-identical to the committed one" false
		tap_diag "$(diff -u "$dir/tiers.json" "$out" 2>&1 | head -40 || true)"
		tap_diag "regenerate it: $RLS import examples/$v/$v.csv ${ARGS[$v]//|/ } -o examples/$v/tiers.json"
	fi
	"$RLS" import "$dir/$v.csv" "${args[@]}" >"$TMP/$v.again.json" 2>/dev/null || true
	tap_ok "$v: importing twice (-o and standard output) gives the same bytes" \
		cmp "$out" "$TMP/$v.again.json"
	tap_ok "$v: rlshape check accepts examples/$v/tiers.json" "$RLS" check "$dir/tiers.json"
	tap_ok "$v: README.md says what was transcribed" test -s "$dir/README.md"
done

# A usage error names the option, says where the help is, exits 2 and writes nothing.
rc=0
"$RLS" import "$EXAMPLES/moonshot/moonshot.csv" --listen-port 0 -o "$TMP/none.json" \
	2>"$TMP/usage.err" || rc=$?
tap_is "$rc" 2 "rlshape import --listen-port 0 exits 2"
tap_is "$(cat "$TMP/usage.err")" \
	'rlshape import: --listen-port must be a TCP port from 1 to 65535, not "0"; see rlshape import --help' \
	"rlshape import --listen-port 0 names the option and the help"
tap_ok "rlshape import wrote nothing after a usage error" test ! -e "$TMP/none.json"

# ---- values against the seed text -------------------------------------------------------
#
# The checker prints one "description<TAB>got<TAB>want" line per check; a crash or a bad
# seed layout is one failing check.

checks=$TMP/checks.tsv
if ! python3 - "$SEEDS" "$EXAMPLES" >"$checks" 2>"$TMP/checks.err" <<'PY'; then
import json, re, sys

seeds, examples = sys.argv[1], sys.argv[2]

def seed(name):
    with open(f"{seeds}/{name}.txt", encoding="utf-8") as f:
        return f.read()

def table(vendor):
    with open(f"{examples}/{vendor}/tiers.json", encoding="utf-8") as f:
        return json.load(f)

def num(text):
    text = text.strip()
    if text.lower() == "unlimited":
        return "unlimited"
    if not re.fullmatch(r"\d{1,3}(,\d{3})*|\d+", text):
        raise ValueError(f"not a number in the seed: {text!r}")
    return int(text.replace(",", ""))

def grouped(v):
    return "Unlimited" if v == "unlimited" else f"{v:,}"

def check(desc, got, want):
    print(f"{desc}\t{got}\t{want}")

# GMI Cloud: a markdown table per tab; every row.
gmi = table("gmi-cloud")["tiers"]
text = seed("000_6afe7aca4454e22b")
tab = None
rows = {"tpm": [], "rph": []}
for line in text.splitlines():
    m = re.search(r'<TabItem value="(\w+)"', line)
    if m:
        tab = m.group(1)
    m = re.fullmatch(r"\|\s*([^|]+?)\s*\|\s*(Tier \d)\s*\|\s*([^|]+?)\s*\|", line.strip())
    if m and tab in rows:
        rows[tab].append(m.groups())
check("gmi-cloud: the seed's LLM table has 190 rows", len(rows["tpm"]), 190)
bad = [f"{m} {t}: seed TPM {v}, tiers.json {gmi.get(t, {}).get(m)}"
       for m, t, v in rows["tpm"] if gmi.get(t, {}).get(m) != {"tpm": num(v)}]
check("gmi-cloud: every LLM row's TPM in the seed is the model's only limit in tiers.json",
      "; ".join(bad[:3]) or "all equal", "all equal")
check("gmi-cloud: seed: deepseek-ai/DeepSeek-R1 Tier 5 TPM 30,000,000",
      gmi["Tier 5"]["deepseek-ai/DeepSeek-R1"].get("tpm"), 30000000)
check("gmi-cloud: seed: Qwen/QwQ-32B Tier 1 TPM 200,000",
      gmi["Tier 1"]["Qwen/QwQ-32B"].get("tpm"), 200000)
check("gmi-cloud: the seed's video table (RPH) has 5 rows, all TBD",
      sorted({v for _, _, v in rows["rph"]}) if rows["rph"] else "none", ["TBD"])
check("gmi-cloud: the video model's RPH is TBD in the seed: no rph in any tier",
      [gmi[t]["Kling-Text2Video-V1.6-Pro"] for _, t, _ in rows["rph"]], [{}] * 5)
check("gmi-cloud: tiers Tier 1..5 and default_tier Tier 1 (the seed's default)",
      [list(gmi), table("gmi-cloud").get("default_tier")],
      [[f"Tier {i}" for i in range(1, 6)], "Tier 1"])

# Moonshot: "Tier0$113500,0001,500,000" is Tier0, $1, concurrency 1, RPM 3, TPM 500,000,
# TPD 1,500,000. Rebuild each tier's row from tiers.json and look for it in the seed.
moon = table("moonshot")["tiers"]
text = seed("001_deb61a3e5e92ab4f")
seed_rows = re.findall(r"^(Tier\d)\$", text, re.M)
check("moonshot: tiers.json has the seed's tiers Tier0..Tier5", list(moon), seed_rows)
for tier, models in moon.items():
    l = models.get("*", {})
    row = (re.escape(tier) + r"\$[\d,]+" + re.escape(
        grouped(l.get("concurrency")) + grouped(l.get("rpm")) + grouped(l.get("tpm")) +
        grouped(l.get("tpd"))) + "$") if set(l) == {"concurrency", "rpm", "tpm", "tpd", "burst"} else None
    got = bool(row and re.search(row, text, re.M))
    check(f"moonshot: {tier} (concurrency {l.get('concurrency')}, RPM {l.get('rpm')}, "
          f"TPM {l.get('tpm')}, TPD {l.get('tpd')}) is a row of the seed", got, True)
check("moonshot: burst = RPM in every tier: the seed states a count per minute, no per-second pacing",
      [l["*"].get("burst") for l in moon.values()], [l["*"].get("rpm") for l in moon.values()])
check("moonshot: seed: Tier0 TPD 1,500,000; Tier5 TPD Unlimited",
      [moon["Tier0"]["*"]["tpd"], moon["Tier5"]["*"]["tpd"]], [1500000, "unlimited"])

# SambaNova: "Model | RPM | RPD |" rows under Production and Preview.
samba = table("sambanova")["tiers"]["sambacloud"]
text = seed("002_07ec6d900f4d3295")
seed_rows = re.findall(r"^([A-Za-z][\w.\-]+) \| (\d+) \| (\d+) \|", text, re.M)
check("sambanova: the seed lists 11 models with RPM and RPD (6 production, 5 preview)",
      len(seed_rows), 11)
check("sambanova: tiers.json has exactly the seed's models, in its order",
      list(samba), [m for m, _, _ in seed_rows])
for m, rpm, rpd in seed_rows:
    check(f"sambanova: seed: {m} RPM {rpm}, RPD {rpd} (burst = RPM: no per-second pacing)",
          samba.get(m), {"rpm": int(rpm), "rpd": int(rpd), "burst": int(rpm)})

# Model Studio: the saved page has one cell per line; a merged cell is simply missing.
ms = table("model-studio")["tiers"]
lines = [l.strip() for l in seed("003_da777cd72bc3f0b6").splitlines() if l.strip()]

def find(start, *marks):
    """The line index of marks[-1], after each earlier mark in turn, from start."""
    i = start
    for mark in marks:
        i = lines.index(mark, i) + 1
    return i - 1

def after(i, n):
    return lines[i + 1:i + 1 + n]

def spot(tier, heading, model, fields, n=None):
    """The n lines after model (in the section under heading) are its fields' values."""
    i = find(0, *heading, model)
    vals = after(i, n or len(fields))
    want = {f: num(v) for f, v in zip(fields, vals)}
    got = {f: ms[tier][model].get(f) for f in fields}
    check(f"model-studio: seed: {tier} {model} " +
          ", ".join(f"{f.upper()} {v}" for f, v in zip(fields, vals)), got, want)

LM = ("Text generation - Qwen", "Qwen language models")
spot("global", LM + ("Global",), "qwen3-max", ["rpm", "tpm"])
spot("global", LM + ("Global",), "qwen3.5-plus", ["rpm", "tpm"])
spot("international", LM + ("International",), "qwen-max", ["rpm", "tpm"])
spot("international", LM + ("International",), "qwen3.5-flash", ["rpm", "tpm"])
spot("global", ("Qwen-VL (visual understanding / image-to-text)", "Global"), "qwen3-vl-flash",
     ["rpm", "tpm"])
spot("international", ("Text generation - Third-party", "DeepSeek", "International"),
     "deepseek-v3.2", ["rpm", "tpm"])
spot("international", ("Text embedding", "International"), "text-embedding-v3", ["rpm", "tpm"])
spot("international", ("Qwen voice design", "International"), "qwen-voice-design", ["rpm"])

# Merged cells: no numbers under the model in the seed, the row above's values in the table.
i = find(0, *LM, "International", "qwen-plus-2025-07-14")
check("model-studio: seed: international qwen-plus-2025-07-14 prints no numbers (merged cells)",
      after(i, 1), ["(qwen-plus-0714)"])
check("model-studio: merged cells: qwen-plus-2025-07-14 has qwen-plus-2025-07-28's limits",
      ms["international"]["qwen-plus-2025-07-14"], ms["international"]["qwen-plus-2025-07-28"])
i = find(0, *LM, "Global", "qwen-plus-2025-09-11")
check("model-studio: seed: global qwen-plus-2025-09-11 and -07-28 print no numbers",
      after(i, 2), ["qwen-plus-2025-07-28", "qwen3.5-flash"])
check("model-studio: merged cells: global qwen-plus-2025-09-11 = qwen-plus-2025-12-01 (60, 1,000,000)",
      [ms["global"]["qwen-plus-2025-09-11"], ms["global"]["qwen-plus-2025-07-28"]],
      [ms["global"]["qwen-plus-2025-12-01"]] * 2)

# The image models' task submission limits: "2 per minute" is rpm 2, "2 per second" rps 2.
start = find(0, "Image generation", "Qwen-Image", "International")
stop = lines.index("Chinese Mainland", start)
per = {"minute": "rpm", "second": "rps"}
images = 0
for j in range(start, stop):
    m = re.fullmatch(r"(\d+) per (minute|second)", lines[j + 1] if j + 1 < stop else "")
    if m:
        model = lines[j]
        images += 1
        check(f"model-studio: seed: international {model} {lines[j + 1]}",
              ms["international"].get(model), {per[m.group(2)]: int(m.group(1))})
check("model-studio: the seed's International Qwen-Image table has 15 models", images, 15)

# Retired models: listed with 0, they admit nothing, in both tiers.
start = find(0, "Retired models")
zero = find(start, "qwen-plus-2024-11-27")
check("model-studio: seed: the retired qwen-plus-2024-11-27 is listed with 0 and 0",
      after(zero, 2), ["0", "0"])
retired = [l for l in lines[start:] if re.fullmatch(r"qwen[\w.\-]*", l)]
check("model-studio: the seed retires 16 models", len(retired), 16)
for tier in ("global", "international"):
    bad = [m for m in retired if ms[tier].get(m) != {"rpm": 0, "tpm": 0}]
    check(f"model-studio: {tier}: every retired model has rpm 0 and tpm 0",
          ", ".join(bad) or "all", "all")
check("model-studio: the tiers are the deployment modes global and international",
      list(ms), ["global", "international"])
PY
	tap_ok "the seed checker ran" false
	tap_diag "$(cat "$TMP/checks.err")"
fi
while IFS=$'\t' read -r desc got want; do
	tap_is "$got" "$want" "$desc"
done <"$checks"

tap_done
