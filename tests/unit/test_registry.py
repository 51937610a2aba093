from __future__ import annotations

import pytest
from pydantic import BaseModel

from jobs.catalog import registry
from jobs.registry import JobSpec, Registry, UnknownJobTypeError


def test_builtin_types_are_registered_with_their_functions() -> None:
    steps = registry.get("demo.steps")
    assert steps.func_path == "jobs.builtin.demo.steps" and steps.queue == "default"
    assert registry.for_function("jobs.builtin.demo.noop").name == "demo.noop"
    names = [spec.name for spec in registry]
    assert names == sorted(names) and {"demo.noop", "demo.sleep", "demo.steps"} <= set(names)


def test_unknown_names_and_functions_raise() -> None:
    with pytest.raises(UnknownJobTypeError):
        registry.get("os.system")
    with pytest.raises(UnknownJobTypeError):
        registry.for_function("os.system")
    assert "os.system" not in registry


def test_registering_twice_or_on_an_unknown_queue_is_refused() -> None:
    local = Registry()

    class Args(BaseModel):
        pass

    local.add(JobSpec("x.one", "x.one", Args, "one"))
    with pytest.raises(ValueError, match="twice"):
        local.add(JobSpec("x.one", "x.other", Args, "again"))
    with pytest.raises(ValueError, match="unknown queue"):
        local.add(JobSpec("x.two", "x.two", Args, "two", queue="urgent"))  # type: ignore[arg-type]


def test_args_schema_is_json_schema() -> None:
    schema = registry.get("demo.steps").args_schema()
    assert schema["type"] == "object"
    assert schema["properties"]["steps"]["maximum"] == 10000
    assert schema["additionalProperties"] is False
