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
"""

from ._client import Check, CheckResult, Decision, ItemError, Warden, WardenError

__all__ = ["Check", "CheckResult", "Decision", "ItemError", "Warden", "WardenError"]
