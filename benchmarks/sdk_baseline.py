"""Baseline for the API benchmark: the rule pack done the way a user would script it with the official SDK.

One fetch per rule over the rule's own window, pages read one after the other until an empty page,
no server-side filters except the required SCIM `idp_id`, every condition applied in Python. The
`cloudflare` package is a benchmark-only dependency (`pip install cloudflare`).

    CLOUDFLARE_API_TOKEN=... python benchmarks/sdk_baseline.py --api-base URL --account-id ID --at T

`limit` is passed explicitly: the API's default is 25 entries, so a script that leaves it out
silently audits 25 records. 1,000,000 is more than any window of the sample data holds, so the
baseline's answers are complete (it prints each rule's status to prove it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cloudflare  # noqa: E402

from auditor.compile.compiler import compile_plan  # noqa: E402
from auditor.core.fields import SOURCES  # noqa: E402
from auditor.core.timeutil import format_time, parse_time  # noqa: E402
from auditor.evaluate.correlate import CorrelationEvaluator  # noqa: E402
from auditor.evaluate.engine import RuleEvaluator  # noqa: E402
from auditor.load.validate import Inputs, load_project  # noqa: E402

LIMIT = 1_000_000  # large enough to be correct: see the module docstring
PER_PAGE = 1000


def _access_pages(client: cloudflare.Cloudflare, account_id: str, since: str, until: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    page = 1
    while True:  # access_requests.list is not auto-paginated by the SDK: loop until an empty page
        batch = client.zero_trust.access.logs.access_requests.list(
            account_id=account_id, since=since, until=until, limit=LIMIT, per_page=PER_PAGE, page=page,
        ) or []
        if not batch:
            return records
        records.extend(r.to_dict() for r in batch)
        page += 1


def _scim_pages(client: cloudflare.Cloudflare, account_id: str, since: str, until: str,
                idp_ids: list[str]) -> list[dict[str, Any]]:
    # The SDK auto-paginates SCIM logs: it asks page after page until an empty one.
    pages = client.zero_trust.access.logs.scim.updates.list(
        account_id=account_id, idp_id=idp_ids, since=since, until=until, limit=LIMIT, per_page=PER_PAGE,
    )
    return [r.to_dict() for r in pages]


def run_baseline(api_base: str, account_id: str, token: str, at: str, rules_dir: Path,
                 config: Path | None) -> dict[str, str]:
    """Evaluate every rule with its own SDK fetch; rule id -> status (pass/fail)."""
    project = load_project(Inputs(paths=(rules_dir,), config_path=config, var_files=(), cli_vars=(),
                                  env=dict(os.environ)))
    if project.diagnostics:
        raise SystemExit("\n".join(d.format() for d in project.diagnostics))
    # The plan is used only for each rule's resolved window and idp ids: what a script would hard-code.
    plan, _ = compile_plan(list(project.rules), project.config, parse_time(at))
    client = cloudflare.Cloudflare(api_token=token, base_url=api_base)
    statuses = {}

    def pages(source: str, conditions: tuple, since: str, until: str) -> list[dict[str, Any]]:
        if source == "access_requests":
            return _access_pages(client, account_id, since, until)
        idp_ids = [c.operand for c in conditions if c.field == "idp_id" and c.op == "eq"]
        return _scim_pages(client, account_id, since, until, idp_ids or list(project.config.scim_idp_ids))

    def timed(source: str, records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
        time_field = SOURCES[source].time_field
        return [(r, parse_time(r[time_field]) if isinstance(r[time_field], str)
                 else int(r[time_field].timestamp() * 1e6)) for r in records]

    for compiled in plan.rules:
        rule = compiled.rule
        since, until = format_time(compiled.since_us), format_time(compiled.until_us)
        if rule.correlation is not None:  # both logs over the rule's window, the join done in Python
            first, then = rule.correlation.first, rule.correlation.then
            correlation = CorrelationEvaluator(compiled)
            for record, t_us in timed(first.source, pages(first.source, first.conditions, since, until)):
                correlation.feed_first(record, t_us)
            correlation.close_first()
            for record, t_us in timed(then.source, pages(then.source, then.conditions, since, until)):
                correlation.feed_then(record, t_us)
            statuses[rule.id] = correlation.outcome().status
            continue
        evaluator = RuleEvaluator(compiled)  # the filtering, in Python, on every record
        for record, t_us in timed(rule.source, pages(rule.source, rule.conditions, since, until)):
            evaluator.feed(record, t_us)
        statuses[rule.id] = evaluator.outcome().status
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-base", default=os.environ.get("CLOUDFLARE_BASE_URL"), required=False)
    parser.add_argument("--account-id", default=os.environ.get("CLOUDFLARE_ACCOUNT_ID"))
    parser.add_argument("--at", required=True)
    parser.add_argument("--rules", type=Path, default=ROOT / "rules")
    parser.add_argument("--config", type=Path, default=ROOT / "auditor.yaml")
    args = parser.parse_args()
    started = time.perf_counter()
    statuses = run_baseline(args.api_base, args.account_id, os.environ["CLOUDFLARE_API_TOKEN"], args.at,
                            args.rules, args.config)
    for rule_id, status in statuses.items():
        print(f"{status:5} {rule_id}")
    print(f"wall time {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
