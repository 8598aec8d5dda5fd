"""Drives the wrapper for the end-to-end tests (tests/tests/clients.rs):
reads a script of calls as JSON on standard input and writes their outcomes
as JSON on standard output, in the same shape as
client/typescript/test/driver.ts::

    {"addr": "...", "token": "...", "ca_file": "...",
     "calls": [{"check": {...}}, {"batch": [{...}, ...]}]}

Checks use the proto's field names, which are also :class:`Check`'s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from warden_client import Check, CheckResult, ItemError, Warden, WardenError


def result(r: CheckResult) -> dict[str, Any]:
    return {
        "result": {
            "decision": r.decision.value,
            "allowed": r.allowed,
            "reasons": list(r.reasons),
            "decision_id": r.decision_id,
            "request_id": r.request_id,
            "policy_revision": r.policy_revision,
            "snapshot_versions": dict(r.snapshot_versions),
            "kill_switch_id": r.kill_switch_id,
        }
    }


def error(code: str, message: str, field: str | None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def batch_item(item: CheckResult | ItemError) -> dict[str, Any]:
    if isinstance(item, ItemError):
        return error(item.code.name, item.message, item.field)
    return result(item)


def run(warden: Warden, call: dict[str, Any]) -> dict[str, Any]:
    try:
        if "check" in call:
            return result(warden.decide(Check(**call["check"])))
        items = warden.batch_check(Check(**item) for item in call["batch"])
        return {"batch": [batch_item(item) for item in items]}
    except WardenError as e:
        return error(e.code.name, e.message, e.field)


def main() -> None:
    script = json.load(sys.stdin)
    ca = Path(script["ca_file"]).read_bytes() if "ca_file" in script else None
    with Warden(script["addr"], token=script.get("token"), ca=ca) as warden:
        print(json.dumps([run(warden, call) for call in script["calls"]]))


if __name__ == "__main__":
    main()
