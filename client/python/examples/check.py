"""Asks Warden one question and prints the answer, like ``wardenctl check``::

    .venv/bin/python examples/check.py --addr 127.0.0.1:50051 \\
        --platform copilot-studio --agent expense-assistant \\
        --principal elena.schmidt --action expenses.submit \\
        --resource expense:exp-42 [--token T] [--ca ca.pem] [--json]

Exits 0 for ALLOW, 1 for DENY, 2 for REQUIRE_APPROVAL, 3 when Warden refused
the request and 4 when it could not be reached.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import grpc

from warden_client import Decision, Warden, WardenError

EXIT_CODES = {Decision.ALLOW: 0, Decision.DENY: 1, Decision.REQUIRE_APPROVAL: 2}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:50051")
    parser.add_argument("--token")
    parser.add_argument("--ca", type=Path, help="PEM CA certificate; turns TLS on")
    parser.add_argument("--platform", default="copilot-studio")
    parser.add_argument("--agent", default="expense-assistant")
    parser.add_argument("--principal", default="elena.schmidt")
    parser.add_argument("--action", default="expenses.submit")
    parser.add_argument("--resource", default="expense:exp-42", help="TYPE[:ID]")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    resource, _, resource_id = args.resource.partition(":")

    ca = args.ca.read_bytes() if args.ca else None
    with Warden(args.addr, token=args.token, ca=ca) as warden:
        try:
            result = warden.check(
                args.platform,
                args.agent,
                args.principal,
                args.action,
                resource,
                resource_id=resource_id,
            )
        except WardenError as error:
            if args.json:
                code, message, field = error.code.name, error.message, error.field
                print(
                    json.dumps(
                        {"error": {"code": code, "message": message, "field": field}}
                    )
                )
            else:
                print(f"warden: {error}", file=sys.stderr)
            unreachable = (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            )
            return 4 if error.code in unreachable else 3

    if args.json:
        fields = dataclasses.asdict(result)
        fields.update(decision=result.decision.value, allowed=result.allowed)
        print(json.dumps(fields))
    else:
        print(result.decision.value)
        for reason in result.reasons:
            print(f"  reason: {reason}")
        print(f"  decision_id: {result.decision_id}")
    return EXIT_CODES[result.decision]


if __name__ == "__main__":
    sys.exit(main())
