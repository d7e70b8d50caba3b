"""`plan --engine ENGINE`: each rule's SQL as that engine would run it, and what stays in Python."""

from __future__ import annotations

from auditor.compile.plan import Plan
from auditor.evaluate.sql.dialects import DIALECTS
from auditor.evaluate.sql.query import compile_rule


def plan_sql(plan: Plan, engine: str) -> str:
    """Text: per rule its aggregate query in the engine's dialect, and the conditions left to Python."""
    dialect = DIALECTS[engine]
    out = []
    for r in plan.rules:
        if r.sides:
            out.append(f"-- {r.rule.id}: correlation rule, matched by the Python correlation evaluator over the "
                       "engine's rows (the then side narrowed by a semi-join on the first side's join values)\n")
            continue
        rs = compile_rule(r, dialect)
        python = [s.condition.describe() for s in (*rs.filter, *(w for ws in rs.wheres for w in ws)) if not s.exact]
        note = f"\n-- in Python for the rows the engine cannot decide: {'; '.join(python)}" if python else ""
        out.append(f"-- {r.rule.id}{note}\n{rs.sql()};\n")
    return "\n".join(out)
