"""Drives the wrapper for the end-to-end tests (tests/tests/clients.rs):
reads a script of calls as JSON on standard input and writes their outcomes
as JSON on standard output, in the same shape as
client/typescript/test/driver.ts::

    {"addr": "...", "token": "...", "ca_file": "...",
     "calls": [{"check": {...}}, {"batch": [{...}, ...]},
               {"search_actions": {...}}, {"search_actions_all": {...}},
               {"allowed_actions": {...}},
               {"request_approval": {"request": {...}, "access_request": {...},
                                     "justification": "..."}},
               {"get_approval_task": "arq_..."},
               {"watch_approval_task": "arq_..."},
               {"cancel_approval_task": {"task_id": "arq_...", "reason": "..."}}]}

Checks use the proto's field names, which are also :class:`Check`'s; a
check's ``approval`` is an ``ApprovalRef`` and ``access_request`` an
``AccessRequest``, as the proto spells them (and results print them). A
search takes :meth:`Warden.search_actions`'s keyword arguments (a check's
fields without the action, plus ``candidates``, ``page_token`` and
``limit``) and prints ``{"search": {...}}``; ``search_actions_all`` and
``allowed_actions`` the same without ``page_token``, printing
``{"search_actions_all": [RESULT, ...]}`` and
``{"allowed_actions": [NAME, ...]}``. A watch
also writes ``{"watch": ID, "state": STATE}`` to standard error, a line per
task it sees, so the test can act while it waits.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from warden_client import (
    AccessRequest,
    ActionResult,
    ApprovalRef,
    ApprovalRequirement,
    ApprovalTask,
    Check,
    CheckResult,
    ItemError,
    SearchActionsResult,
    Warden,
    WardenError,
)


def to_check(wire: dict[str, Any]) -> Check:
    fields = dict(wire)
    if fields.get("approval") is not None:
        fields["approval"] = ApprovalRef(**fields["approval"])
    return Check(**fields)


def to_access_request(wire: dict[str, Any]) -> AccessRequest:
    fields = dict(wire)
    if fields.get("requirement") is not None:
        requirement = dict(fields["requirement"])
        requirement["approvers"] = tuple(requirement["approvers"])
        fields["requirement"] = ApprovalRequirement(**requirement)
    return AccessRequest(**fields)


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
            "access_request": (
                dataclasses.asdict(r.access_request) if r.access_request else None
            ),
            "approval": dataclasses.asdict(r.approval) if r.approval else None,
            "next_action": r.next_action,
            "retry_after_seconds": r.retry_after_seconds,
        }
    }


def action(r: ActionResult) -> dict[str, Any]:
    return {
        "name": r.name,
        "decision": r.decision.value,
        "allowed": r.allowed,
        "reasons": list(r.reasons),
    }


def search(s: SearchActionsResult) -> dict[str, Any]:
    return {
        "search": {
            "results": [action(r) for r in s.results],
            "next_token": s.next_token,
            "count": s.count,
            "total": s.total,
            "evaluated": s.evaluated,
            "done": s.done,
            "search_id": s.search_id,
            "policy_revision": s.policy_revision,
            "snapshot_versions": dict(s.snapshot_versions),
        }
    }


def task(t: ApprovalTask) -> dict[str, Any]:
    fields = dataclasses.asdict(t)
    fields.update(state=t.state.value, ended=t.ended)
    return fields


def error(code: str, message: str, field: str | None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def batch_item(item: CheckResult | ItemError) -> dict[str, Any]:
    if isinstance(item, ItemError):
        return error(item.code.name, item.message, item.field)
    return result(item)


def watch(warden: Warden, task_id: str) -> dict[str, Any]:
    seen = []
    for t in warden.watch_approval_task(task_id):
        print(json.dumps({"watch": task_id, "state": t.state.value}), file=sys.stderr)
        sys.stderr.flush()
        seen.append(task(t))
    return {"tasks": seen}


def run(warden: Warden, call: dict[str, Any]) -> dict[str, Any]:
    try:
        if "check" in call:
            return result(warden.decide(to_check(call["check"])))
        if "batch" in call:
            items = warden.batch_check(to_check(item) for item in call["batch"])
            return {"batch": [batch_item(item) for item in items]}
        if "search_actions" in call:
            return search(warden.search_actions(**call["search_actions"]))
        if "search_actions_all" in call:
            found = warden.search_actions_all(**call["search_actions_all"])
            return {"search_actions_all": [action(r) for r in found]}
        if "allowed_actions" in call:
            allowed = warden.allowed_actions(**call["allowed_actions"])
            return {"allowed_actions": allowed}
        if "request_approval" in call:
            args = call["request_approval"]
            submitted = warden.request_approval(
                to_check(args["request"]),
                to_access_request(args["access_request"]),
                justification=args.get("justification", ""),
            )
            return {"task": task(submitted)}
        if "get_approval_task" in call:
            return {"task": task(warden.get_approval_task(call["get_approval_task"]))}
        if "watch_approval_task" in call:
            return watch(warden, call["watch_approval_task"])
        if "cancel_approval_task" in call:
            args = call["cancel_approval_task"]
            return {
                "task": task(
                    warden.cancel_approval_task(args["task_id"], args.get("reason", ""))
                )
            }
        raise ValueError(f"unknown call: {call}")
    except WardenError as e:
        return error(e.code.name, e.message, e.field)


def main() -> None:
    script = json.load(sys.stdin)
    ca = Path(script["ca_file"]).read_bytes() if "ca_file" in script else None
    with Warden(script["addr"], token=script.get("token"), ca=ca) as warden:
        print(json.dumps([run(warden, call) for call in script["calls"]]))


if __name__ == "__main__":
    main()
