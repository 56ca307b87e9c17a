"""core.workflows.catalogue: what a ``--machine`` names, and the one refusal of a name that matches no machine."""

from __future__ import annotations

import pytest

from core.errors import BadInputError, Reason
from core.workflows.catalogue import machine_named, machines_named
from db.queries import get_or_create_machine
from db.session import session_scope

KNOWN = "known: fan/id_00, fan/id_02, pump/id_00"


@pytest.fixture
def machines(any_db_url) -> str:
    with session_scope(any_db_url, write=True) as session:
        for machine_type, machine_id in (("fan", "id_00"), ("fan", "id_02"), ("pump", "id_00")):
            get_or_create_machine(session, machine_type, machine_id)
    return any_db_url


def _refusal(call) -> str:
    with pytest.raises(BadInputError) as info:
        call()
    assert info.value.reason is Reason.INVALID_PARAMETER
    return info.value.detail


def test_machines_named_by_key_type_or_all(machines):
    with session_scope(machines) as session:
        assert [m.key for m in machines_named(session, None)] == ["fan/id_00", "fan/id_02", "pump/id_00"]
        assert [m.key for m in machines_named(session, "")] == ["fan/id_00", "fan/id_02", "pump/id_00"]
        assert [m.key for m in machines_named(session, "fan")] == ["fan/id_00", "fan/id_02"]
        assert [m.key for m in machines_named(session, "pump/id_00")] == ["pump/id_00"]
        assert machine_named(session, "fan/id_02").key == "fan/id_02"


@pytest.mark.parametrize("spec", ["NONSENSE", "%", "_", "fan/%", "fan/id_0_", "f_n/id_00", "valve/id_00", "x" * 200])
def test_a_name_that_matches_no_machine_is_refused_with_the_known_ones(machines, spec):
    shown = repr(spec) if len(spec) <= 60 else repr(spec[:59] + "…")
    with session_scope(machines) as session:
        assert _refusal(lambda: machines_named(session, spec)) == f"no such machine {shown} ({KNOWN})"
        assert _refusal(lambda: machine_named(session, spec)) == f"no such machine {shown} ({KNOWN})"


def test_one_machine_is_asked_for_and_a_type_named(machines):
    with session_scope(machines) as session:
        for spec in ("fan", "fan/"):
            assert _refusal(lambda: machine_named(session, spec)) == (  # noqa: B023
                f"{spec!r} is a machine type; give one machine as TYPE/ID ({KNOWN})"
            )


def test_the_known_machines_are_cut_short_and_an_empty_database_says_what_to_do(any_db_url):
    with session_scope(any_db_url) as session:
        assert _refusal(lambda: machines_named(session, "fan")) == (
            "no such machine 'fan' (no machines yet: ingest clips first)"
        )
    with session_scope(any_db_url, write=True) as session:
        for k in range(12):
            get_or_create_machine(session, "fan", f"id_{k:02d}")
    with session_scope(any_db_url) as session:
        first = ", ".join(f"fan/id_{k:02d}" for k in range(10))
        assert _refusal(lambda: machine_named(session, "pump/id_00")) == (
            f"no such machine 'pump/id_00' (known: {first} and 2 more)"
        )
