"""`make bench-chaos`: the chaos scenarios at full length, one table in BENCHMARKS.md.

Each scenario lives in its own module `bench/chaos_<name>.py` and registers itself with
`@scenario("name", title=...)`; this module discovers every `bench.chaos_*` module, so adding a
scenario never edits this file. A scenario is a function `(ChaosContext) -> list[Row]`: it
starts its own processes (loopback only, bounded in count and time), stops them by PID, and
reports what it measured as rows of one shared table:

    | scenario | measure | value | target | met |

The table replaces the section between `SECTION_BEGIN` and `SECTION_END` of BENCHMARKS.md (it is
appended once when the markers are missing), so the main benchmark report and this one share
the file. The same scenario engines run, shorter, as tests in `tests/chaos/` (which assert
counts, never timings).

    python -m bench.chaos [--only NAME ...] [--quick] [--markdown BENCHMARKS.md] [--list]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import pathlib
import pkgutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

__all__ = [
    "ChaosContext",
    "Row",
    "SCENARIOS",
    "SECTION_BEGIN",
    "SECTION_END",
    "scenario",
    "discover",
    "render_table",
    "splice_section",
    "main",
]

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTION_BEGIN = "<!-- chaos:begin (written by `make bench-chaos`, bench/chaos.py) -->"
SECTION_END = "<!-- chaos:end -->"


@dataclass(frozen=True)
class ChaosContext:
    """What a scenario may use: its length, its request budget and a scratch folder."""

    duration_s: float = 30.0  # load phases (overload, SIGSTOP...) run this long
    fuzz_count: int = 10_000  # fuzzed requests per target
    workdir: pathlib.Path = field(default_factory=lambda: pathlib.Path(tempfile.mkdtemp()))
    quick: bool = False  # shorter phases for a smoke run (not the published figures)


@dataclass(frozen=True)
class Row:
    """One measured figure. `met` is None when the row has no target."""

    scenario: str
    measure: str
    value: str
    target: str = ""
    met: bool | None = None


ScenarioFn = Callable[[ChaosContext], list[Row]]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    fn: ScenarioFn


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, *, title: str) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register `fn` as the bench scenario `name` (titles appear under the table)."""

    def register(fn: ScenarioFn) -> ScenarioFn:
        if name in SCENARIOS:
            raise ValueError(f"chaos scenario {name!r} registered twice")
        SCENARIOS[name] = Scenario(name, title, fn)
        return fn

    return register


def discover() -> dict[str, Scenario]:
    """Import every `bench.chaos_*` module (each registers its scenarios)."""
    bench_dir = pathlib.Path(__file__).resolve().parent
    for info in sorted(pkgutil.iter_modules([str(bench_dir)]), key=lambda i: i.name):
        if info.name.startswith("chaos_"):
            importlib.import_module(f"bench.{info.name}")
    return SCENARIOS


def render_table(rows: list[Row], meta: dict) -> str:
    """The markdown section body: a header line, the table, the scenario titles."""
    lines = [
        "## Chaos: overload, hostile input, failures",
        "",
        f"Measured {meta['when']} on {meta['machine']} (`make bench-chaos`, "
        f"{meta['elapsed_s']:.0f} s). Each scenario starts its own processes on loopback.",
        "",
        "| scenario | measure | value | target | met |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.scenario} | {r.measure} | {r.value} | {r.target} | {met} |")
    lines.append("")
    for name in meta["scenarios"]:
        s = SCENARIOS.get(name)
        if s is not None:
            lines.append(f"- **{s.name}**: {s.title}")
    return "\n".join(lines) + "\n"


def splice_section(text: str, body: str) -> str:
    """Replace the marked chaos section of `text` with `body` (append it when missing)."""
    block = f"{SECTION_BEGIN}\n{body}{SECTION_END}\n"
    start = text.find(SECTION_BEGIN)
    end = text.find(SECTION_END)
    if start != -1 and end > start:
        return text[:start] + block + text[end + len(SECTION_END) :].lstrip("\n")
    sep = "" if text.endswith("\n\n") or not text else ("\n" if text.endswith("\n") else "\n\n")
    return text + sep + block


def _machine() -> str:
    import os
    import platform

    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", nargs="*", default=None, help="scenario names (default: all)")
    p.add_argument("--quick", action="store_true", help="short phases; does not write the file")
    p.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"))
    p.add_argument("--json", default=str(ROOT / "bench" / "results" / "chaos.json"))
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = p.parse_args(argv)

    found = discover()
    if args.list:
        for s in found.values():
            print(f"{s.name:24s} {s.title}")
        return 0
    names = list(found) if not args.only else args.only
    unknown = [n for n in names if n not in found]
    if unknown:
        p.error(f"unknown scenarios {unknown}; known: {sorted(found)}")
    ctx = (
        ChaosContext(duration_s=8.0, fuzz_count=1_000, quick=True) if args.quick else ChaosContext()
    )

    rows: list[Row] = []
    failed = False
    t0 = time.monotonic()
    for name in names:
        print(f"chaos: {name} ...", flush=True)
        try:
            got = found[name].fn(ctx)
        except Exception:  # a broken scenario is a row, not a lost table
            traceback.print_exc()
            failed = True
            got = [Row(name, "scenario", "crashed (see log)", "", False)]
        for r in got:
            print(f"  {r.measure}: {r.value}  {r.target}", flush=True)
        rows.extend(got)
    meta = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "elapsed_s": time.monotonic() - t0,
        "scenarios": names,
        "quick": args.quick,
    }
    body = render_table(rows, meta)
    print(body)
    if not args.quick:
        md = pathlib.Path(args.markdown)
        md.write_text(splice_section(md.read_text() if md.exists() else "", body))
        out = pathlib.Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    # run the registry of the importable module: scenario modules register with `bench.chaos`,
    # not with this `__main__` copy of it
    from bench.chaos import main as _main

    sys.exit(_main())
