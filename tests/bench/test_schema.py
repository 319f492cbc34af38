"""The published result schemas: generated from the typed results, checked in and shipped equal
to what the types generate, printed by `tcpip6-lab schema`, and real outputs of every kind —
storm JSON of every outcome, serve's /status.json, bench cells — valid against them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trio

from bench.schema import SCHEMAS, cell_schema, source_path, stale
from bench.schema import main as schema_main
from bench.sweep import CELL_SCHEMA_VERSION, FIELDS, Cell, CellRecord, run_cell, write_json
from tcpip6lab import services
from tcpip6lab.cli import main
from tcpip6lab.host import EmulatedHost
from tcpip6lab.params import ModelParams
from tcpip6lab.schema import render, serve_schema, storm_schema
from tcpip6lab.status import SERVE_SCHEMA_VERSION
from tcpip6lab.storm import STORM_SCHEMA_VERSION, StormConfig, run_storm_async


def validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_valid(schema: dict[str, Any], doc: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(schema).iter_errors(doc)]
    assert errors == []


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_checked_in_and_shipped_schemas_equal_the_generated_ones(name: str) -> None:
    gen, package, filename = SCHEMAS[name]
    text = render(gen())
    assert source_path(name).read_text(encoding="utf-8") == text, \
        "out of date: python -m bench.schema --update (and raise its version if the shape moved)"
    from importlib import resources
    assert (resources.files(package) / "schemas" / filename).read_text(encoding="utf-8") == text
    jsonschema.Draft202012Validator.check_schema(json.loads(text))
    assert stale() == [] and schema_main(["--check"]) == 0


@pytest.mark.parametrize("name,version", [("storm", STORM_SCHEMA_VERSION),
                                          ("serve", SERVE_SCHEMA_VERSION),
                                          ("bench-cell", CELL_SCHEMA_VERSION)])
def test_schema_command_prints_the_shipped_schema(capsys: pytest.CaptureFixture[str], name: str,
                                                  version: int) -> None:
    assert main(["schema", name]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == SCHEMAS[name][0]()
    assert printed["properties"]["schema_version"] == {
        "const": version, "description": "the version of this schema; raised when the shape "
                                         "changes"}
    assert "schema_version" in printed["required"]


def test_schema_command_refuses_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'nope'" in err


# -- storm --json, every outcome -------------------------------------------------------------

PLAN = """\
[run]
heal_at = 30.0

[[oid]]
oid = "OID_GEN_LINK_SPEED"
action = "delay"
delay = { distribution = "uniform", low = 0.1, high = 0.3 }
"""

#: every static critical worker held for 7 s while the pool cannot grow: a stall that ends
HOLD = """\
[[queue]]
id = "hog"
action = "hold"
workers = 12
at = 0.5
duration = 7.0
"""


@pytest.mark.parametrize("args,outcome", [
    (["--adapters", "4", "--executor", "dedicated"], "bound"),
    (["--adapters", "30"], "deadlock"),
    (["--adapters", "100", "--executor", "dedicated", "--horizon", "50ms"], "stalled"),
    (["--adapters", "4", "--multicast-list-size", "1"], "failed"),
    (["--adapters", "6", "--executor", "dedicated", "--faults", "PLAN", "--log", "LOG"],
     "bound"),
    (["--adapters", "2", "--executor", "async", "--foreign-holders", "0", "--max-dynamic", "0",
      "--faults", "HOLD"], "bound"),
])
def test_storm_json_of_every_outcome_is_valid(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path, args: list[str],
                                              outcome: str) -> None:
    plan, hold = tmp_path / "plan.toml", tmp_path / "hold.toml"
    plan.write_text(PLAN)
    hold.write_text(HOLD)
    files = {"PLAN": str(plan), "HOLD": str(hold), "LOG": str(tmp_path / "run.jsonl")}
    argv = [files.get(a, a) for a in args]
    assert main(["storm", "--json", *argv]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outcome"] == outcome and doc["schema_version"] == STORM_SCHEMA_VERSION
    schema = storm_schema()
    assert_valid(schema, doc)
    # (a knot is proven from its declared wakers before any stall is reported)
    present = {"deadlock": outcome == "deadlock", "stalls": "HOLD" in args,
               "failures": outcome == "failed", "faults": "--faults" in args,
               "trace_hash": "--log" in args}
    for key, expected in present.items():
        assert (key in doc) is expected, key  # every optional part is exercised somewhere
    # and the schema is not vacuous: a stray key, a wrong type, a bad outcome are refused
    for mutate in (lambda d: d.update(surprise=1),
                   lambda d: d["critical_workers"].update(static="24"),
                   lambda d: d.update(outcome="hung"),
                   lambda d: d.pop("oids"),
                   lambda d: d.update(schema_version=STORM_SCHEMA_VERSION + 1)):
        bad = copy.deepcopy(doc)
        mutate(bad)
        assert not validator(schema).is_valid(bad)


# -- serve's /status.json --------------------------------------------------------------------

async def host_after(cfg: StormConfig) -> EmulatedHost:
    hosts: list[EmulatedHost] = []
    await run_storm_async(cfg, on_host=hosts.append)
    return hosts[0]


@pytest.mark.parametrize("executor,adapters,knot", [("dedicated", 3, False),
                                                    ("critical", 30, True)])
async def test_serve_status_is_valid_bound_and_knotted(executor: str, adapters: int,
                                                       knot: bool) -> None:
    host = await host_after(StormConfig(adapters=adapters,
                                        params=ModelParams(executor=executor)))
    doc = json.loads(json.dumps(services.status(host)))  # what /status.json sends
    assert doc["schema_version"] == SERVE_SCHEMA_VERSION
    assert (doc["deadlock"] is not None) is knot and len(doc["interfaces"]) == adapters
    assert any(i["addresses"] for i in doc["interfaces"]) is not knot
    schema = serve_schema()
    assert_valid(schema, doc)
    bad = copy.deepcopy(doc)
    bad["interfaces"][0]["mtu"] = 1500
    assert not validator(schema).is_valid(bad)


async def test_serve_status_of_a_host_before_any_adapter() -> None:
    host = EmulatedHost(ModelParams(executor="critical"))
    async with trio.open_nursery() as nursery:
        await nursery.start(host.kernel.run)
        host.start()
        assert_valid(serve_schema(), json.loads(json.dumps(services.status(host))))
        nursery.cancel_scope.cancel()


# -- bench cells ------------------------------------------------------------------------------

def test_cell_record_type_is_the_fields() -> None:
    assert tuple(CellRecord.__annotations__) == ("schema_version", *FIELDS)


def test_bench_cells_are_valid(tmp_path: Path) -> None:
    records = [run_cell(Cell("dedicated", 3)), run_cell(Cell("critical", 30)),
               run_cell(Cell("critical", 3, horizon=0.0))]  # StormConfig refuses: an error
    assert [r["outcome"] for r in records] == ["bound", "deadlock", "error"]
    schema = cell_schema()
    out = tmp_path / "cells.json"
    write_json(records, out, grid="test")
    for record in json.loads(out.read_text())["cells"]:
        assert record["schema_version"] == CELL_SCHEMA_VERSION
        assert_valid(schema, record)
    bad = dict(records[0], outcome="maybe")
    assert not validator(schema).is_valid(bad)
