"""Reads the ptxas -v lines of a CUDA build log into a table of every kernel: registers, stack
frame, spill stores and loads, shared memory, per architecture.

    python tools/ptxas_report.py BUILD_LOG [--markdown OUT.md] [--json OUT.json] [--fail-on-spill]

Build with MEMORY_EXT_PTXAS_VERBOSE=1 (and pip install -v) so the log has the lines. Exits 1
with --fail-on-spill when any kernel spills, 2 when the log holds no ptxas lines at all.
"""
import argparse
import json
import re
import shutil
import subprocess
import sys

_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse(text):
    """The kernels of a build log: a list of dicts with kernel (mangled), arch, registers,
    stack, spill_stores, spill_loads, smem (static shared memory, bytes), in log order.
    One kernel compiled twice (two files, two builds) is kept once."""
    rows, cur, seen = [], None, set()
    for line in text.splitlines():
        m = _ENTRY.search(line)
        if m:
            cur = dict(kernel=m.group(1), arch=m.group(2), registers=None, stack=0,
                       spill_stores=0, spill_loads=0, smem=0)
            continue
        if cur is None:
            continue
        m = _FRAME.search(line)
        if m:
            cur["stack"], cur["spill_stores"], cur["spill_loads"] = map(int, m.groups())
            continue
        m = _USED.search(line)
        if m:
            cur["registers"] = int(m.group(1))
            s = _SMEM.search(line)
            cur["smem"] = int(s.group(1)) if s else 0
            key = (cur["kernel"], cur["arch"])
            if key not in seen:
                seen.add(key)
                rows.append(cur)
            cur = None
    return rows


def demangle(names):
    """c++filt of each name where c++filt exists, with memory_ext's namespaces shortened."""
    tool = shutil.which("c++filt")
    if tool is None or not names:
        return list(names)
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True).stdout
    short = []
    for n in out.splitlines():
        n = n.replace("memory_ext::cuda::(anonymous namespace)::", "")
        n = n.replace("memory_ext::", "")
        n = re.sub(r"\(.*\)$", "", n)  # drop the parameter list
        short.append(n[5:] if n.startswith("void ") else n)
    return short if len(short) == len(names) else list(names)


def spills(rows):
    return [r for r in rows if r["spill_stores"] or r["spill_loads"]]


def markdown(rows):
    names = demangle([r["kernel"] for r in rows])
    lines = ["| kernel | arch | registers | stack frame (B) | spill stores (B) | spill loads (B) | static smem (B) |",
             "|---|---|---|---|---|---|---|"]
    for n, r in sorted(zip(names, rows), key=lambda x: (x[1]["arch"], x[0])):
        lines.append(f"| `{n}` | {r['arch']} | {r['registers']} | {r['stack']} | "
                     f"{r['spill_stores']} | {r['spill_loads']} | {r['smem']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("--markdown")
    ap.add_argument("--json")
    ap.add_argument("--fail-on-spill", action="store_true")
    a = ap.parse_args(argv)
    try:
        with open(a.log, errors="replace") as f:
            rows = parse(f.read())
    except OSError as e:
        print(f"ptxas_report: cannot read {a.log}: {e.strerror}", file=sys.stderr)
        return 2
    if not rows:
        print(f"ptxas_report: no ptxas -v lines in {a.log} (build with MEMORY_EXT_PTXAS_VERBOSE=1 "
              "and pip install -v)", file=sys.stderr)
        return 2
    table = markdown(rows)
    print(table, end="")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    bad = spills(rows)
    if bad and a.fail_on_spill:
        for r in bad:
            print(f"ptxas_report: {r['kernel']} ({r['arch']}) spills {r['spill_stores']} B stores, "
                  f"{r['spill_loads']} B loads", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
