"""The one served-version rule (store/versions.py): newest by creation time, not by name."""

from __future__ import annotations

from store.versions import served_version


def test_newest_creation_time_wins_over_string_order() -> None:
    assert served_version({"zzzz": 100.0, "aaaa": 200.0, "mmmm": 150.0}) == "aaaa"


def test_equal_creation_times_fall_back_to_the_version_string() -> None:
    assert served_version({"b": 5.0, "c": 5.0, "a": 5.0}) == "c"


def test_no_versions_serves_none() -> None:
    assert served_version({}) is None
