"""The results folder's public names."""

from __future__ import annotations

from meshload import results


def test_all_is_complete_sorted_and_importable() -> None:
    public = {name for name in vars(results) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(results, name)).__name__ == "module"}
    assert set(results.__all__) == public - modules
    assert results.__all__ == sorted(results.__all__)
    for name in results.__all__:
        assert getattr(results, name) is not None
