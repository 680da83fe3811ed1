"""bench/chaos.py: the marked BENCHMARKS.md section is replaced in place, never duplicated."""

from __future__ import annotations

from bench.chaos import SECTION_BEGIN, SECTION_END, Row, render_table, splice_section


def test_splice_appends_once_then_replaces_in_place() -> None:
    doc = "# Benchmarks\n\nmain table\n"
    once = splice_section(doc, "first\n")
    assert once.startswith(doc)
    assert once.count(SECTION_BEGIN) == 1 and "first\n" in once
    twice = splice_section(once + "tail\n", "second\n")
    assert twice.count(SECTION_BEGIN) == 1 and twice.count(SECTION_END) == 1
    assert "first" not in twice and "second\n" in twice
    assert twice.endswith("tail\n")


def test_render_table_marks_missed_targets() -> None:
    rows = [Row("x", "goodput", "95%", ">= 90%", True), Row("x", "misses", "3", "0", False)]
    body = render_table(rows, {"when": "t", "machine": "m", "elapsed_s": 1.0, "scenarios": []})
    assert "| x | goodput | 95% | >= 90% | yes |" in body
    assert "| x | misses | 3 | 0 | **no** |" in body


def test_discover_registers_every_chaos_module_scenario() -> None:
    from bench.chaos import discover

    found = discover()
    assert {"overload", "fuzz"} <= set(found)
    assert all(s.title for s in found.values())
