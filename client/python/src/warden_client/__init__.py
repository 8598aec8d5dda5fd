"""Python client for Warden's decision plane.

The stubs in ``warden_client._pb`` are generated from the repository's
``proto/`` by ``generate.py`` (grpcio-tools); this package wraps them::

    from warden_client import Warden

    with Warden("127.0.0.1:50051") as warden:
        result = warden.check(
            "copilot-studio", "expense-assistant", "elena.schmidt",
            "expenses.submit", "expense", resource_id="exp-42",
        )
        if result.allowed:
            ...

A REQUIRE_APPROVAL result that carries an ``access_request`` can be put to a
person, and the check repeated with the approval they give::

    check = Check("support-desk", "access-admin", "ivan.petrov",
                  "permissions.grant", "role", resource_id="finance-approver")
    result = warden.decide(check)
    if result.access_request is not None:
        task = warden.request_approval(check, result.access_request,
                                       justification="quarter close")
        for task in warden.watch_approval_task(task.id):
            pass  # the last one has ended: approved, denied, expired or cancelled
        if task.approval is not None:
            result = warden.decide(dataclasses.replace(check, approval=task.approval))

Which of the platform's tools may the agent use here? Every candidate is
answered with the decision a check would get; ``allowed_actions`` keeps the
ALLOW ones, following the pages::

    tools = warden.allowed_actions(
        "support-desk", "access-admin", "amelia.tanaka", "account",
        resource_id="acct-7", candidates=["accounts.read", "accounts.delete", ...],
    )
"""

from ._client import (
    AccessRequest,
    ActionResult,
    ApprovalRef,
    ApprovalRequirement,
    ApprovalTask,
    ApprovalTaskState,
    ApprovalUse,
    AudienceGap,
    Check,
    CheckResult,
    Decision,
    ItemError,
    SearchActionsResult,
    Warden,
    WardenError,
)

__all__ = [
    "AccessRequest",
    "ActionResult",
    "ApprovalRef",
    "ApprovalRequirement",
    "ApprovalTask",
    "ApprovalTaskState",
    "ApprovalUse",
    "AudienceGap",
    "Check",
    "CheckResult",
    "Decision",
    "ItemError",
    "SearchActionsResult",
    "Warden",
    "WardenError",
]
