"""The dry run's wall time with --jobs N: a list schedule of the plan's steps, in plan order, respecting deps."""

from __future__ import annotations

from qtalign.study.estimate import COSTS, format_estimate, schedule_seconds
from qtalign.study.plan import Plan, Step

COST = {**COSTS, "build": 10.0, "compare": 1.0}


def plan_of(*steps: tuple[str, str, tuple[str, ...]]) -> Plan:
    return Plan([Step(sid, kind, deps, {}) for sid, kind, deps in steps])


def test_independent_steps_share_the_workers() -> None:
    plan = plan_of(("a", "build", ()), ("b", "build", ()), ("c", "build", ()), ("d", "build", ()))
    ids = [s.id for s in plan.steps]
    assert schedule_seconds(plan, ids, 1, COST) == 40.0
    assert schedule_seconds(plan, ids, 2, COST) == 20.0
    assert schedule_seconds(plan, ids, 8, COST) == 10.0
    assert schedule_seconds(plan, [], 2, COST) == 0.0


def test_a_step_waits_for_what_it_depends_on() -> None:
    # a chain cannot go faster than its length; a reused dependency (not to run) does not hold its step back
    plan = plan_of(("a", "build", ()), ("b", "build", ("a",)), ("c", "compare", ("b",)), ("x", "build", ()))
    assert schedule_seconds(plan, ["a", "b", "c", "x"], 2, COST) == 21.0
    assert schedule_seconds(plan, ["b", "c"], 2, COST) == 11.0


def test_the_dry_run_prints_both_estimates() -> None:
    plan = plan_of(("a", "build", ()), ("b", "build", ()))
    from qtalign.study.estimate import estimate

    kinds = estimate(plan, ["a", "b"], COST)
    one = format_estimate(kinds, COST)
    assert "one step at a time" not in one and "with --jobs" not in one
    two = format_estimate(kinds, COST, scheduled=(2, schedule_seconds(plan, ["a", "b"], 2, COST)))
    assert "(0 min) one step at a time" in two and "with --jobs 2: about 0.0 h (0 min)" in two
