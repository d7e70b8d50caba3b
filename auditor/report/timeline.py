"""Template filters for periodic results: the timeline of steps, its heatmap layout and summaries."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.core.status import Status


def steps(results: list[dict]) -> list[str]:
    """All timeline instants across the results, in time order."""
    instants = {step["at"] for result in results for step in result.get("timeline") or ()}
    return sorted(instants)


def heatmap(results: list[dict], width: float = 1100) -> dict:
    """Timelines aligned on shared instants, laid out for an SVG of about `width` pixels.

    {'steps': [at...], 'rows': [{'id', 'status', 'cells': [step|None], 'bad': N}], 'label': px of the rule id
    column, 'cell': px per step, 'ticks': [{'x', 'text'}] (axis labels that do not overlap), 'width', 'height'}.
    """
    instants = steps(results)
    rows = []
    for result in results:
        if not result.get("timeline"):
            continue
        by_at = {step["at"]: step for step in result["timeline"]}
        cells = [by_at.get(at) for at in instants]
        bad = sum(1 for c in cells if c and c["status"] != Status.PASS)
        rows.append({"id": result["id"], "status": result["status"], "cells": cells, "bad": bad})
    label = max((len(r["id"]) for r in rows), default=4) * 7 + 16
    n = max(len(instants), 1)
    cell = min(max((width - label - 56) / n, 3.0), 24.0)
    # Axis labels: the date (and the time when the steps are not all at the same time of day), as many
    # as fit without overlapping, on the first step and every k-th after it.
    times = {at[11:16] for at in instants}
    text = (lambda at: at[5:10]) if len(times) <= 1 else (lambda at: f"{at[5:10]} {at[11:16]}")
    room = 40 if len(times) <= 1 else 76
    k = max(1, -(-room // int(cell)) if cell >= 1 else room)
    ticks = [{"x": label + i * cell, "text": text(at)} for i, at in enumerate(instants) if i % k == 0]
    return {"steps": instants, "rows": rows, "label": label, "cell": cell, "ticks": ticks,
            "width": label + cell * n + 56, "height": len(rows) * 20 + 24}


_MARKS = {Status.PASS: ".", Status.FAIL: "x", Status.WAIVED: "w", Status.ERROR: "!"}


def step_marks(result: dict) -> str:
    """A periodic result's timeline, one character per step: `.` pass, `x` fail, `w` waived, `!` error, `?` no
    data (an error because data does not cover the step's window)."""
    return "".join("?" if step.get("reason") == "no_data" else _MARKS.get(step["status"], "?")
                   for step in result.get("timeline") or ())


def step_summary(result: dict) -> str:
    """How a periodic result's steps went: 'failed at 4 of 30 steps', ''; without a timeline."""
    timeline = result.get("timeline") or []
    n = len(timeline)
    if not n:
        return ""
    count = {status: sum(1 for step in timeline if step["status"] == status) for status in Status}
    error, fail, waived = count[Status.ERROR], count[Status.FAIL], count[Status.WAIVED]
    no_data = sum(1 for step in timeline if step.get("reason") == "no_data")
    steps = f"{n} step{'s' if n != 1 else ''}"
    if no_data:
        return f"no data at {no_data} of {steps}" + (f", error at {error - no_data}" if error > no_data else "")
    if error:
        return f"error at {error} of {steps}"
    if fail:
        return f"failed at {fail} of {steps}" + (f", {waived} waived" if waived else "")
    if waived:
        return f"waived at {waived} of {steps}"
    return f"passed at all {n} steps" if n != 1 else "passed at its only step"


def failing_steps(result: dict) -> list[dict]:
    """The timeline steps that failed or errored."""
    return [step for step in result.get("timeline") or () if step["status"] in (Status.FAIL, Status.ERROR)]


def step_list(timeline: Iterable[dict]) -> str:
    """Steps as text: '2026-11-03T00:00:00Z (2 groups), 2026-11-05T00:00:00Z (error)'."""
    parts = []
    for step in timeline:
        if step.get("reason") == "no_data":
            parts.append(f"{step['at']} (no data)")
        elif step["status"] == Status.ERROR:
            parts.append(f"{step['at']} (error)")
        else:
            v = step["violations"]
            parts.append(f"{step['at']} ({v} group{'' if v == 1 else 's'})")
    return ", ".join(parts)
