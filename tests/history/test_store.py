"""The results store, the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.support.synthetic_runs import DAY_MS, START_UNIX_MS, make_plan, synthetic_run

from meshload.errors import UsageError
from meshload.history.records import FIGURES, HistoryRecord, Kind, record_from_run
from meshload.history.schedules import Firing, Schedule
from meshload.history.schema import SCHEMA_VERSION
from meshload.history.store import ResultStore, StoreError, open_store
from meshload.results.headline import Estimate


def test_a_run_comes_back_with_its_plan_labels_figures_intervals_and_files(store: ResultStore) -> None:
    rng = np.random.default_rng(1)
    result = synthetic_run(
        rng, run_id="run-a", plan=make_plan(function="mtls"), failed_per_second=2, proxy_cpu_mcores=250.0
    )
    result.labels = {"commit": "abc123"}
    record = record_from_run(result, "/data/runs/run-a")

    (row_id,) = store.record(record)
    (back,) = store.records()

    assert back.id == row_id
    assert (back.key, back.kind, back.plan_name, back.location) == ("run-a", "run", "nightly", "/data/runs/run-a")
    assert back.plan == result.plan.model_dump(mode="json")
    assert back.plan_digest == record.plan_digest and len(back.plan_digest) == 16
    assert back.labels == {"function": "mtls", "commit": "abc123"}
    assert back.environment == {"hostname": "loadgen", "cpu_cores": 2}
    assert back.requests == 2000 and back.errors == 20
    assert back.rate_rps == pytest.approx(200.0)
    assert back.started_unix_ms == START_UNIX_MS and back.valid and not back.degraded
    for name in FIGURES:
        assert back.figures[name] == record.figures[name], name
    p99 = back.figures["p99_ms"]
    assert p99.value == pytest.approx(result.corrected.value_at_percentile(99.0) / 1000.0)
    assert p99.low is not None and p99.high is not None and p99.value is not None
    assert p99.low < p99.value < p99.high
    assert back.figures["error_rate_pct"].value == pytest.approx(1.0)
    assert back.figures["proxy_cpu_mcores"] == Estimate(250.0)
    assert back.figures["proxy_mem_mb"] == Estimate(50.0)


def test_recording_the_same_run_again_replaces_it_and_its_labels(store: ResultStore) -> None:
    record = _record("run-a", labels={"function": "mtls", "old": "yes"})
    first = store.record(record)
    record.labels = {"function": "retries"}
    record.valid = False
    record.validity = ["the generator fell behind"]

    assert store.record(record) == first
    (back,) = store.records()
    assert back.labels == {"function": "retries"}
    assert not back.valid and back.validity == ["the generator fell behind"]


def test_filters_by_plan_labels_and_kind_with_newest_first_and_a_limit(store: ResultStore) -> None:
    store.record(
        _record("a1", plan="alpha", started=1, labels={"function": "mtls", "level": "50"}),
        _record("a2", plan="alpha", started=2, labels={"function": "mtls", "level": "100"}),
        _record("a3", plan="alpha", started=3, labels={"function": "retries", "level": "50"}),
        _record("b1", plan="beta", started=4, labels={"function": "mtls", "level": "50"}),
        _record("s1", plan="alpha", started=5, kind="study"),
        _record("c1", plan="alpha", started=6, kind="cell", parent="s1", labels={"function": "mtls"}),
    )

    def keys(**filters: Any) -> list[str]:
        return [record.key for record in store.records(**filters)]

    assert keys() == ["c1", "s1", "b1", "a3", "a2", "a1"]
    assert keys(plan="alpha", kinds=["run"]) == ["a3", "a2", "a1"]
    assert keys(labels={"function": "mtls"}, kinds=["run"]) == ["b1", "a2", "a1"]
    assert keys(labels={"function": "mtls", "level": "50"}) == ["b1", "a1"]
    assert keys(labels={"function": "none"}) == []
    assert keys(kinds=["study", "cell"]) == ["c1", "s1"]
    assert keys(parent_key="s1") == ["c1"]
    assert keys(plan="alpha", limit=2) == ["c1", "s1"]
    assert keys(plan="alpha", kinds=["run"], oldest_first=True) == ["a1", "a2", "a3"]
    assert store.plan_names() == ["alpha", "beta"]


def test_schedules_are_added_listed_refused_twice_and_removed(store: ResultStore) -> None:
    nightly = Schedule("nightly", "0 3 * * *", ["run", "--scenario", "x.yaml"], "Europe/Paris", 1234)
    store.add_schedule(nightly)
    store.add_schedule(Schedule("a-first", "*/5 * * * * *", ["history"], "UTC", 99))

    assert store.schedules() == [Schedule("a-first", "*/5 * * * * *", ["history"], "UTC", 99), nightly]
    with pytest.raises(UsageError, match="a schedule named 'nightly' exists"):
        store.add_schedule(nightly)
    assert store.remove_schedule("nightly") is True
    assert store.remove_schedule("nightly") is False
    assert [schedule.name for schedule in store.schedules()] == ["a-first"]


def test_firings_are_logged_updated_and_the_last_due_time_is_known(store: ResultStore) -> None:
    assert store.last_due_unix_ms("nightly") is None
    running = Firing("nightly", due_unix_ms=1_000, status="running", started_unix_ms=1_010, command=["run"])
    store.add_firing(running)
    store.add_firing(
        Firing("nightly", due_unix_ms=2_000, last_due_unix_ms=9_000, status="missed", missed_count=8, detail="down")
    )
    store.add_firing(Firing("other", due_unix_ms=50_000, status="skipped", detail="nightly still running"))
    running.status, running.exit_code, running.ended_unix_ms, running.out_dir = "succeeded", 0, 1_500, "/runs/x"
    store.update_firing(running)

    assert store.last_due_unix_ms("nightly") == 9_000
    assert store.last_due_unix_ms("other") == 50_000
    log = store.firings("nightly")
    assert [(f.due_unix_ms, f.status, f.missed_count) for f in log] == [(2_000, "missed", 8), (1_000, "succeeded", 0)]
    assert (log[1].exit_code, log[1].ended_unix_ms, log[1].out_dir, log[1].command) == (0, 1_500, "/runs/x", ["run"])
    assert [f.schedule for f in store.firings(limit=1)] == ["other"]

    store.add_firing(Firing("nightly", due_unix_ms=10_000, status="running"))
    assert store.abandon_running_firings("server died") == 1
    assert store.firings("nightly", limit=1)[0].status == "abandoned"
    assert store.abandon_running_firings("server died") == 0


def test_the_schema_is_created_once_versioned_and_a_newer_one_refused(store_location: str) -> None:
    first = open_store(store_location)
    first.record(_record("kept"))
    first.close()
    with open_store(store_location) as again:  # opening an existing store keeps what it holds
        assert again.schema_version == SCHEMA_VERSION
        assert [record.key for record in again.records()] == ["kept"]
        with again._cursor("test") as cursor:  # a newer meshload wrote this store
            again._execute(
                cursor, "UPDATE meta SET value = ? WHERE key = ?", (str(SCHEMA_VERSION + 1), "schema_version")
            )
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}, newer than this meshload"):
        open_store(store_location)


def test_a_store_that_cannot_be_opened_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot open it") as sqlite_error:
        open_store(str(blocker / "history.db"))
    assert "--store" in str(sqlite_error.value)

    not_sqlite = tmp_path / "garbage.db"
    not_sqlite.write_bytes(b"\x00" * 4096)
    with pytest.raises(StoreError, match=r"garbage\.db: cannot open it \(file is not a database\)"):
        open_store(str(not_sqlite))

    with pytest.raises(StoreError, match=r"cannot connect .*check the URL") as pg_error:
        open_store("postgresql://meshload:secret@127.0.0.1:1/none")
    assert "secret" not in str(pg_error.value) and ":***@" in str(pg_error.value)


def test_the_default_store_follows_xdg_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with open_store(None) as opened:
        opened.record(_record("one"))
    path = tmp_path / "xdg" / "meshload" / "history.db"
    assert path.is_file()
    with sqlite3.connect(path) as raw:  # a plain SQLite file other tools can read
        assert raw.execute("SELECT key, plan_name FROM records").fetchall() == [("one", "nightly")]
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with open_store(None) as opened:
        assert opened.display == str(tmp_path / "home" / ".local" / "share" / "meshload" / "history.db")


def _record(
    key: str,
    *,
    plan: str = "nightly",
    started: int = 0,
    labels: dict[str, str] | None = None,
    kind: Kind = "run",
    parent: str | None = None,
) -> HistoryRecord:
    return HistoryRecord(
        key=key,
        kind=kind,
        parent_key=parent,
        plan_name=plan,
        plan={"name": plan},
        plan_digest="d",
        started_unix_ms=START_UNIX_MS + started * DAY_MS,
        labels=dict(labels or {}),
        requests=10,
        figures={"p50_ms": Estimate(1.0, 0.9, 1.1)},
    )
