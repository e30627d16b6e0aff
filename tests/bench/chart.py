#!/usr/bin/env python3
"""chart.py - slope against each peer, from one side-by-side run of
../shared/bench/peers/run_all.sh: the bar chart docs/performance.svg and the
ratio tables of docs/performance.md. Python 3 standard library only.

    python3 tests/bench/chart.py RAW [--svg docs/performance.svg] [--markdown]

RAW is run_all.sh's raw.txt (OUT/raw.txt, every RESULT line of every round,
after a "### round=N <label> :: <command>" line). For each comparison below:

  * the quantity of slope and of the peer in each round (the median of that
    round's lines: the t1 OpenBLAS line is printed twice per round), and a sum
    of metrics where a comparison needs one (record + backward), per round;
  * the value is the ratio of the medians over rounds (the medians that
    summary.md prints: over every line of every round; for a sum, the median
    of the per-round sums) and the range is min..max of the per-round ratios.

Every bar is a speed-up: the peer's time / slope's time, or slope's GFLOP/s /
the peer's, so right of 1 is "slope faster". Targets (issue 6) are drawn as a
black tick, in the same terms. --markdown prints the comparisons as Markdown
tables, each also in the issue's own terms (for example slope's time / the
peer's time, target <= 2.0).
"""
import argparse
import math
import re
import statistics
import sys
from collections import defaultdict

RESULT = re.compile(r"^RESULT workload=(\S+) peer=(\S+) threads=(\d+) metric=(\S+) "
                    r"value=(\S+) unit=(\S+)")
ROUND = re.compile(r"^### round=(\d+) ")

# micrograd is not shipped with the peers (run_all.sh does not run it); issue 6
# states its W6 target against this figure from RESULTS.md.
MICROGRAD_W6_S = 0.921

W1, W2, W3 = "W1-op-overhead", "W2-planar", "W3-mlp-medium"
W41, W42 = "W4-matmul-1024", "W4-matmul-256"
W5, W5S, W6 = "W5-speelpenning-n100000", "W5-speelpenning-scalar-n10000", "W6-micrograd-moons"


def q(wl, peer, metric, threads=1):
    """one RESULT quantity"""
    return ((wl, peer, str(threads), metric),)


def qsum(*parts):
    """the per-round sum of several quantities"""
    return tuple(p[0] for p in parts)


def const(value):
    return (("const", value),)


# kind: "time" (lower is better) or "rate" (GFLOP/s, higher is better).
# issue: how issue 6 words the target:
#   ("le", x): slope's time / the peer's time <= x   (or GFLOP/s: "ge" below)
#   ("ge_speed", x): the peer's time / slope's time >= x ("x times faster")
#   ("ge_rate", x): slope's GFLOP/s / the peer's >= x
#   None: no target, shown for context.
C = [
    # group, label, slope quantity, peer quantity, peer family, kind, target
    ("W1 op overhead: record + backward, ns/op (t1)", "vs PyTorch",
     q(W1, "slope", "ns_per_op_total"), q(W1, "torch", "ns_per_op_total"), "torch", "time",
     None),  # the issue's "≈ 375×" is 2.0× the C adjoint on its Zen 3 figures, not a target
    (None, "vs ADOL-C (trace_on … fos_reverse)",
     q(W1, "slope", "ns_per_op_total"), q(W1, "adolc", "ns_per_op_total"), "adolc", "time",
     ("ge_speed", 2.5)),
    (None, "vs hand-coded C adjoint",
     q(W1, "slope", "ns_per_op_total"), q(W1, "c-handcoded-adjoint", "ns_per_op_total"), "c",
     "time", ("le", 2.0)),
    ("W1 replay (sl_forward + sl_backward), ns/op (t1)", "vs ADOL-C gradient() replay",
     q(W1, "slope", "ns_per_op_gradient_replay"), q(W1, "adolc", "ns_per_op_gradient_replay"),
     "adolc", "time", None),
    (None, "vs hand-coded C adjoint",
     q(W1, "slope", "ns_per_op_gradient_replay"), q(W1, "c-handcoded-adjoint", "ns_per_op_total"),
     "c", "time", ("le", 1.5)),
    ("W2 planar: µs per iteration (t1)", "vs PyTorch (F.binary_cross_entropy)",
     q(W2, "slope", "us_per_iter"), q(W2, "torch-bce", "us_per_iter"), "torch", "time",
     ("ge_speed", 10)),
    (None, "vs PyTorch (elementwise cost)",
     q(W2, "slope", "us_per_iter"), q(W2, "torch-elementwise", "us_per_iter"), "torch", "time",
     None),
    (None, "vs NumPy hand-written backprop",
     q(W2, "slope", "us_per_iter"), q(W2, "numpy-handwritten", "us_per_iter"), "numpy", "time",
     None),
    (None, "vs hand-written C, scalar libm",
     q(W2, "slope", "us_per_iter"), q(W2, "c-handwritten", "us_per_iter"), "c", "time",
     ("le", 1.3)),
    (None, "vs hand-written C, libmvec",
     q(W2, "slope", "us_per_iter"), q(W2, "c-handwritten-libmvec", "us_per_iter"), "c", "time",
     None),
    ("W3 MLP 784-256-256-10: ms per step, t1 (default build)", "vs PyTorch",
     q(W3, "slope", "ms_per_step"), q(W3, "torch", "ms_per_step"), "torch", "time", ("le", 0.75)),
    (None, "vs NumPy hand-written backprop",
     q(W3, "slope", "ms_per_step"), q(W3, "numpy-handwritten", "ms_per_step"), "numpy", "time",
     ("le", 1.0)),
    ("W3 MLP: ms per step, t2 (SLOPE_OPENMP build)", "vs PyTorch",
     q(W3, "slope-openmp", "ms_per_step", 2), q(W3, "torch", "ms_per_step", 2), "torch", "time",
     ("le", 0.75)),
    (None, "vs PyTorch, OMP_WAIT_POLICY=PASSIVE",
     q(W3, "slope-openmp", "ms_per_step", 2), q(W3, "torch-omp-passive", "ms_per_step", 2),
     "torch", "time", ("le", 0.75)),
    (None, "vs NumPy hand-written backprop",
     q(W3, "slope-openmp", "ms_per_step", 2), q(W3, "numpy-handwritten", "ms_per_step", 2),
     "numpy", "time", ("le", 1.0)),
    ("W3 MLP: ms per step, t2 (default build, one thread)", "vs PyTorch",
     q(W3, "slope", "ms_per_step", 2), q(W3, "torch", "ms_per_step", 2), "torch", "time",
     ("le", 0.75)),
    (None, "vs PyTorch, OMP_WAIT_POLICY=PASSIVE",
     q(W3, "slope", "ms_per_step", 2), q(W3, "torch-omp-passive", "ms_per_step", 2),
     "torch", "time", ("le", 0.75)),
    (None, "vs NumPy hand-written backprop",
     q(W3, "slope", "ms_per_step", 2), q(W3, "numpy-handwritten", "ms_per_step", 2),
     "numpy", "time", ("le", 1.0)),
    ("W4 matmul n=1024: GFLOP/s, t1", "default build vs OpenBLAS cblas_dgemm",
     q(W41, "slope", "gflops"), q(W41, "c-openblas-cblas", "gflops"), "openblas", "rate",
     ("ge_rate", 0.75)),
    (None, "default build vs torch.mm",
     q(W41, "slope", "gflops"), q(W41, "torch", "gflops"), "torch", "rate", None),
    (None, "SLOPE_OPENBLAS build vs cblas_dgemm",
     q(W41, "slope-openblas", "gflops"), q(W41, "c-openblas-cblas", "gflops"), "openblas",
     "rate", ("ge_rate", 0.97)),
    ("W4 matmul n=1024: GFLOP/s, t2", "SLOPE_OPENMP build vs cblas_dgemm",
     q(W41, "slope-openmp", "gflops", 2), q(W41, "c-openblas-cblas", "gflops", 2), "openblas",
     "rate", ("ge_rate", 0.70)),
    (None, "SLOPE_OPENMP build vs torch.mm",
     q(W41, "slope-openmp", "gflops", 2), q(W41, "torch", "gflops", 2), "torch", "rate", None),
    (None, "SLOPE_OPENBLAS build vs cblas_dgemm",
     q(W41, "slope-openblas", "gflops", 2), q(W41, "c-openblas-cblas", "gflops", 2), "openblas",
     "rate", ("ge_rate", 0.97)),
    ("SLOPE_NO_AVX512 build (AVX2 code at most), t1", "W2 vs PyTorch (F.binary_cross_entropy)",
     q(W2, "slope-avx2", "us_per_iter"), q(W2, "torch-bce", "us_per_iter"), "torch", "time",
     None),
    (None, "W3 vs PyTorch",
     q(W3, "slope-avx2", "ms_per_step"), q(W3, "torch", "ms_per_step"), "torch", "time", None),
    (None, "W4 n=1024 vs cblas_dgemm",
     q(W41, "slope-avx2", "gflops"), q(W41, "c-openblas-cblas", "gflops"), "openblas", "rate",
     None),
    (None, "W6 tensor graph vs PyTorch",
     q(W6, "slope-avx2", "s_per_step_tensor_graph"), q(W6, "torch", "s_per_step"), "torch",
     "time", None),
    ("W4 matmul n=256: GFLOP/s", "t1, default build vs cblas_dgemm",
     q(W42, "slope", "gflops"), q(W42, "c-openblas-cblas", "gflops"), "openblas", "rate",
     ("ge_rate", 0.75)),
    (None, "t2, SLOPE_OPENMP build vs cblas_dgemm",
     q(W42, "slope-openmp", "gflops", 2), q(W42, "c-openblas-cblas", "gflops", 2), "openblas",
     "rate", ("ge_rate", 0.70)),
    ("W5 Speelpenning n=10⁵, scalar tape (t1)", "record + reverse vs plain C loop",
     qsum(q(W5, "slope", "tape_record_s"), q(W5, "slope", "reverse_after_record_s")),
     q(W5, "c-plain", "plain_function_s"), "c", "time", ("le", 5.0)),
    (None, "replay gradient vs plain C loop",
     q(W5, "slope", "gradient_replay_s"), q(W5, "c-plain", "plain_function_s"), "c", "time",
     ("le", 3.0)),
    (None, "recording alone vs a minimal eager tape's (c-minimal-tape, in process)",
     q(W5, "slope", "tape_record_s"), q(W5, "c-minimal-tape", "tape_record_s"), "c", "time",
     None),
    (None, "record + reverse vs hand-coded C adjoint",
     qsum(q(W5, "slope", "tape_record_s"), q(W5, "slope", "reverse_after_record_s")),
     q(W5, "c-handcoded-adjoint", "gradient_s"), "c", "time", None),
    (None, "record + reverse vs ADOL-C taping + fos_reverse",
     qsum(q(W5, "slope", "tape_record_s"), q(W5, "slope", "reverse_after_record_s")),
     qsum(q(W5, "adolc", "tape_record_s"), q(W5, "adolc", "reverse_after_record_s")), "adolc",
     "time", None),
    (None, "replay gradient vs ADOL-C gradient()",
     q(W5, "slope", "gradient_replay_s"), q(W5, "adolc", "gradient_replay_s"), "adolc", "time",
     None),
    (None, "record + reverse vs torch.prod (one vector op)",
     qsum(q(W5, "slope", "tape_record_s"), q(W5, "slope", "reverse_after_record_s")),
     qsum(q(W5, "torch-prod", "forward_record_s"), q(W5, "torch-prod", "backward_s")), "torch",
     "time", None),
    ("W5 scalar chain n=10⁴ (t1)", "record + reverse vs PyTorch 0-d leaves",
     qsum(q(W5S, "slope", "tape_record_s"), q(W5S, "slope", "reverse_after_record_s")),
     qsum(q(W5S, "torch-scalar-leaves", "forward_record_s"),
          q(W5S, "torch-scalar-leaves", "backward_s")), "torch", "time", None),
    (None, "record + reverse vs ADOL-C",
     qsum(q(W5S, "slope", "tape_record_s"), q(W5S, "slope", "reverse_after_record_s")),
     qsum(q(W5S, "adolc", "tape_record_s"), q(W5S, "adolc", "reverse_after_record_s")), "adolc",
     "time", None),
    ("W6 moons MLP: s per step (t1)", "tensor graph vs PyTorch",
     q(W6, "slope", "s_per_step_tensor_graph"), q(W6, "torch", "s_per_step"), "torch", "time",
     ("le", 0.1)),
    (None, "tensor graph vs hand-written C",
     q(W6, "slope", "s_per_step_tensor_graph"), q(W6, "c-handwritten", "s_per_step"), "c",
     "time", None),
    (None, "scalar graph vs micrograd (0.921 s, RESULTS.md)*",
     q(W6, "slope", "s_per_step_scalar_graph"), const(MICROGRAD_W6_S), "micrograd", "time",
     ("ge_speed", 300)),
    (None, "scalar graph vs PyTorch (tensors)",
     q(W6, "slope", "s_per_step_scalar_graph"), q(W6, "torch", "s_per_step"), "torch", "time",
     None),
]

FAMILY = {  # colour, legend
    "torch": ("#e4572e", "PyTorch 1.13"),
    "numpy": ("#3b75af", "NumPy (OpenBLAS)"),
    "adolc": ("#8c6bb1", "ADOL-C 2.7"),
    "openblas": ("#2a9d8f", "OpenBLAS cblas_dgemm"),
    "c": ("#7f7f7f", "hand-written C"),
    "micrograd": ("#e9b949", "micrograd* (not this run)"),
}


def read_raw(path):
    """{key: {round: [values]}} and the FAILED labels"""
    data = defaultdict(lambda: defaultdict(list))
    failed = []
    rnd = 0
    for line in open(path, encoding="utf-8"):
        m = ROUND.match(line)
        if m:
            rnd = int(m.group(1))
            continue
        if line.startswith("### FAILED"):
            failed.append(line[len("### FAILED:"):].strip())
            continue
        m = RESULT.match(line)
        if m:
            wl, peer, th, metric, val, _unit = m.groups()
            data[(wl, peer, th, metric)][rnd].append(float(val))
    return data, failed


def per_round(data, quantity):
    """{round: value} for a quantity (a sum of keys), rounds where all parts exist"""
    if quantity[0][0] == "const":
        return {"const": quantity[0][1]}
    parts = []
    for key in quantity:
        if key not in data:
            return {}
        parts.append({r: statistics.median(v) for r, v in data[key].items()})
    rounds = set(parts[0]).intersection(*parts[1:])
    return {r: sum(p[r] for p in parts) for r in sorted(rounds)}


def median_of(data, quantity, rounds):
    """summary.md's median (over every line of every round) for one key; the
    median of the per-round sums for a sum"""
    if not rounds:
        return None
    if len(quantity) == 1 and quantity[0][0] != "const":
        return statistics.median(v for vs in data[quantity[0]].values() for v in vs)
    return statistics.median(rounds.values())


def speed(kind, slope, peer):
    """how many times faster slope is"""
    return peer / slope if kind == "time" else slope / peer


def compare(data):
    rows = []
    group = None
    for g, label, sq, pq, fam, kind, target in C:
        group = g or group
        s, p = per_round(data, sq), per_round(data, pq)
        sm, pm = median_of(data, sq, s), median_of(data, pq, p)
        if sm is None or pm is None or sm <= 0 or pm <= 0:
            rows.append(dict(group=group, label=label, fam=fam, kind=kind, target=target,
                             missing=True))
            continue
        if "const" in p:
            rr = [speed(kind, v, p["const"]) for v in s.values()]
        else:
            rr = [speed(kind, s[r], p[r]) for r in s if r in p]
        sp = speed(kind, sm, pm)
        rows.append(dict(group=group, label=label, fam=fam, kind=kind, target=target,
                         missing=False, slope=sm, peer=pm, speed=sp, lo=min(rr), hi=max(rr),
                         nrounds=len(rr)))
    return rows


def target_speed(target):
    """the target as a minimum speed-up"""
    if target is None:
        return None
    how, x = target
    return 1.0 / x if how == "le" else x


def issue_terms(row):
    """(ratio in the issue's terms, its range, target text, met)"""
    how, x = row["target"] if row["target"] else ("ge_speed" if row["kind"] == "time"
                                                  else "ge_rate", None)
    sp, lo, hi = row["speed"], row["lo"], row["hi"]
    if how == "le":  # slope / peer time
        val, rng, text = 1 / sp, (1 / hi, 1 / lo), "≤ %g×" % x if x else ""
        met = val <= x if x else None
    else:  # a speed-up or a GFLOP/s ratio, higher is better
        val, rng = sp, (lo, hi)
        text = ("≥ %g×" % x if how == "ge_speed" else "≥ %g" % x) if x else ""
        met = val >= x if x else None
    return val, rng, text, met


def fmt(v):
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1000:
        return "%.0f" % v
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    if a >= 0.01:
        return "%.3f" % v
    return "%.3g" % v


def markdown(rows, out):
    out.write("| comparison | slope | peer | ratio, issue's terms (median; rounds min..max) "
              "| target | |\n|---|---|---|---|---|---|\n")
    for r in rows:
        name = "%s — %s" % (r["group"], r["label"])
        if r["missing"]:
            out.write("| %s | – | – | not measured in this run | | |\n" % name)
            continue
        val, rng, text, met = issue_terms(r)
        how = (r["target"] or ("ge_speed" if r["kind"] == "time" else "ge_rate", 0))[0]
        term = {"le": "slope ÷ peer time", "ge_speed": "peer ÷ slope time",
                "ge_rate": "slope ÷ peer GFLOP/s"}[how]
        verdict = "" if met is None else ("**met**" if met else "**missed**")
        out.write("| %s | %s | %s | %s = **%s** (%s..%s) | %s | %s |\n" % (
            name, fmt(r["slope"]), fmt(r["peer"]), term, fmt(val), fmt(rng[0]), fmt(rng[1]),
            text, verdict))


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg(rows, title, subtitle, path):
    rows = [r for r in rows if not r["missing"]]
    vals = [v for r in rows for v in (r["lo"], r["hi"], r["speed"])]
    vals += [target_speed(r["target"]) for r in rows if r["target"]]
    lo = 10 ** math.floor(math.log10(min(vals) / 1.2))
    hi = 10 ** math.ceil(math.log10(max(vals) * 1.2))
    left, plot_w, right = 360, 520, 70
    width = left + plot_w + right
    top, row_h, head_h = 74, 19, 24
    groups = []
    for r in rows:
        if not groups or groups[-1] != r["group"]:
            groups.append(r["group"])
    height = top + len(rows) * row_h + len(groups) * head_h + 96

    def x(v):
        return left + plot_w * (math.log10(v) - math.log10(lo)) / (math.log10(hi) -
                                                                  math.log10(lo))

    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'viewBox="0 0 %d %d" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">'
         % (width, height, width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="16" font-weight="bold">%s</text>' % (12, esc(title)),
         '<text x="%d" y="42" fill="#333">%s</text>' % (12, esc(subtitle)),
         '<text x="%d" y="60" fill="#333">%s</text>' % (
             12, esc("Bar: median over rounds; whisker: min..max of the per-round ratios; "
                     "black tick: issue 6 target."))]
    y_end = height - 88
    # grid and axis labels
    d = int(round(math.log10(lo)))
    while 10 ** d <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10 ** d
            if v < lo * 0.9999 or v > hi * 1.0001:
                continue
            xv = x(v)
            major = m == 1
            o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1"/>'
                     % (xv, top - 6, xv, y_end, "#bbb" if major else "#e6e6e6"))
            if major or (hi / lo <= 1e4):
                lab = ("%g×" % v)
                o.append('<text x="%.1f" y="%d" text-anchor="middle" fill="%s" font-size="%d">'
                         '%s</text>' % (xv, y_end + 14, "#333" if major else "#888",
                                        11 if major else 9, lab))
        d += 1
    o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-width="1.5"/>'
             % (x(1), top - 6, x(1), y_end))
    for xv, anchor, text in ((x(lo), "start", "← slope slower"),
                             (left + plot_w / 2, "middle", "speed-up of slope over the peer "
                              "(log scale)"),
                             (x(hi), "end", "slope faster →")):
        o.append('<text x="%.1f" y="%d" text-anchor="%s" fill="#333">%s</text>'
                 % (xv, y_end + 30, anchor, esc(text)))
    y = top
    group = None
    for r in rows:
        if r["group"] != group:
            group = r["group"]
            o.append('<text x="12" y="%d" font-weight="bold">%s</text>' % (y + 15, esc(group)))
            y += head_h
        colour = FAMILY[r["fam"]][0]
        x0, x1 = x(1), x(r["speed"])
        o.append('<text x="%d" y="%d" fill="#222">%s</text>' % (24, y + 13, esc(r["label"])))
        o.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"%s/>' % (
            min(x0, x1), y + 3, max(abs(x1 - x0), 1), row_h - 6, colour,
            ' fill-opacity="0.55" stroke="%s" stroke-dasharray="3,2"' % colour
            if r["fam"] == "micrograd" else ""))
        if r["hi"] > r["lo"]:
            yc = y + row_h / 2
            o.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#222" '
                     'stroke-width="1"/>' % (x(r["lo"]), yc, x(r["hi"]), yc))
            for v in (r["lo"], r["hi"]):
                o.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#222"/>'
                         % (x(v), yc - 3, x(v), yc + 3))
        ts = target_speed(r["target"])
        if ts:
            o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" '
                     'stroke-width="2.5"/>' % (x(ts), y + 1, x(ts), y + row_h - 1))
        val = "%s×" % fmt(r["speed"])
        if r["speed"] >= 1:
            xt, anchor = max(x1, x(r["hi"]), x(ts) if ts else 0) + 4, "start"
        else:
            xt, anchor = min(x1, x(r["lo"]), x(ts) if ts else 1e9) - 4, "end"
        o.append('<text x="%.1f" y="%d" text-anchor="%s" fill="#111">%s</text>'
                 % (xt, y + 13, anchor, esc(val)))
        y += row_h
    # legend
    ly = height - 40
    lx = 12
    for fam in ("torch", "numpy", "adolc", "openblas", "c", "micrograd"):
        colour, name = FAMILY[fam]
        o.append('<rect x="%.0f" y="%d" width="12" height="12" fill="%s"/>'
                 % (lx, ly - 10, colour))
        o.append('<text x="%.0f" y="%d">%s</text>' % (lx + 16, ly, esc(name)))
        lx += 30 + 7.4 * len(name)
    o.append('<text x="12" y="%d" fill="#555" font-size="11">%s</text>' % (
        ly + 20, esc("* micrograd is not run by run_all.sh; the W6 target is stated against "
                     "its 0.921 s/step in shared/bench/RESULTS.md.")))
    o.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(o) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("raw", help="run_all.sh's raw.txt")
    ap.add_argument("--svg", help="write the chart here")
    ap.add_argument("--markdown", action="store_true", help="print the ratio tables")
    ap.add_argument("--title", default="slope against its peers, one side-by-side run")
    ap.add_argument("--subtitle", default="")
    a = ap.parse_args()
    data, failed = read_raw(a.raw)
    rows = compare(data)
    for f in failed:
        print("warning: run_all.sh reported FAILED: %s" % f, file=sys.stderr)
    for r in rows:
        if r["missing"]:
            print("warning: not in %s: %s — %s" % (a.raw, r["group"], r["label"]),
                  file=sys.stderr)
    if a.svg:
        svg(rows, a.title, a.subtitle, a.svg)
    if a.markdown:
        markdown(rows, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
