"""The wrapper around the generated ``warden.v1.DecisionService`` stub."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ._pb import decision_pb2, decision_pb2_grpc

__all__ = [
    "Check",
    "CheckResult",
    "Decision",
    "ItemError",
    "Warden",
    "WardenError",
]


class Decision(enum.Enum):
    """Warden's answer. ``DECISION_UNSPECIFIED`` is never sent and reads as DENY."""

    ALLOW = "ALLOW"
    DENY = "DENY"
    REQUIRE_APPROVAL = "REQUIRE_APPROVAL"


_DECISIONS = {
    decision_pb2.DECISION_ALLOW: Decision.ALLOW,
    decision_pb2.DECISION_DENY: Decision.DENY,
    decision_pb2.DECISION_REQUIRE_APPROVAL: Decision.REQUIRE_APPROVAL,
}

_CODES = {code.value[0]: code for code in grpc.StatusCode}


@dataclass(frozen=True)
class Check:
    """One question: may ``agent`` of ``platform``, acting for ``principal``,
    do ``action`` on a ``resource`` (its type)?"""

    platform: str
    agent: str
    principal: str
    action: str
    resource: str
    resource_id: str = ""
    principal_type: str = ""
    delegation_chain: Sequence[str] = ()
    agent_attributes: Mapping[str, Any] | None = None
    principal_attributes: Mapping[str, Any] | None = None
    action_attributes: Mapping[str, Any] | None = None
    resource_attributes: Mapping[str, Any] | None = None
    context: Mapping[str, Any] | None = None
    request_id: str = ""

    def to_proto(self) -> decision_pb2.CheckRequest:
        return decision_pb2.CheckRequest(
            platform=self.platform,
            agent=decision_pb2.Agent(
                id=self.agent, attributes=_struct(self.agent_attributes)
            ),
            principal=decision_pb2.Principal(
                type=self.principal_type,
                id=self.principal,
                attributes=_struct(self.principal_attributes),
            ),
            delegation_chain=list(self.delegation_chain),
            action=decision_pb2.Action(
                name=self.action, attributes=_struct(self.action_attributes)
            ),
            resource=decision_pb2.Resource(
                type=self.resource,
                id=self.resource_id,
                attributes=_struct(self.resource_attributes),
            ),
            context=_struct(self.context),
            request_id=self.request_id,
        )


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    decision: Decision
    reasons: tuple[str, ...]
    decision_id: str
    request_id: str
    policy_revision: str
    snapshot_versions: dict[str, str] = field(default_factory=dict)
    kill_switch_id: str | None = None

    @property
    def allowed(self) -> bool:
        """True only for ALLOW: REQUIRE_APPROVAL means a person must confirm first."""
        return self.decision is Decision.ALLOW

    @classmethod
    def from_proto(cls, response: decision_pb2.CheckResponse) -> CheckResult:
        return cls(
            decision=_DECISIONS.get(response.decision, Decision.DENY),
            reasons=tuple(response.reasons),
            decision_id=response.decision_id,
            request_id=response.request_id,
            policy_revision=response.policy_revision,
            snapshot_versions=dict(response.snapshot_versions),
            kill_switch_id=(
                response.kill_switch.id if response.HasField("kill_switch") else None
            ),
        )


@dataclass(frozen=True)
class ItemError:
    """Why one item of a batch was not decided."""

    code: grpc.StatusCode
    """The status ``check`` would have failed with."""
    message: str
    field: str | None = None
    """The offending field, e.g. ``agent.id``, when one is to blame."""


class WardenError(Exception):
    """A call Warden refused or that failed: the gRPC status code, its message,
    and the field a ``google.rpc.BadRequest`` detail blames."""

    def __init__(
        self, code: grpc.StatusCode, message: str, field: str | None = None
    ) -> None:
        text = f"{code.name}: {message}"
        super().__init__(f"{text} (field: {field})" if field else text)
        self.code = code
        self.message = message
        self.field = field

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> WardenError:
        call: Any = error  # raised RpcErrors are also grpc.Call
        code: grpc.StatusCode = call.code()
        return cls(code, call.details() or "", _bad_request_field(call))


class Warden:
    """A connection to Warden's decision listener.

    ``address`` is ``host:port``, or a URL: ``https://`` turns TLS on, as does
    ``ca`` (PEM CA certificates) or ``cert``/``key`` (a PEM client identity).
    ``token`` is sent as ``authorization: Bearer <token>`` on every call;
    ``timeout`` is each call's deadline in seconds.
    """

    def __init__(
        self,
        address: str = "127.0.0.1:50051",
        *,
        token: str | None = None,
        ca: bytes | None = None,
        cert: bytes | None = None,
        key: bytes | None = None,
        server_name: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        tls = address.startswith("https://") or ca is not None or cert is not None
        target = address.removeprefix("https://").removeprefix("http://")
        options: list[tuple[str, str]] = []
        if server_name is not None:
            options.append(("grpc.ssl_target_name_override", server_name))
        if tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=ca, private_key=key, certificate_chain=cert
            )
            self._channel = grpc.secure_channel(target, credentials, options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        self._stub = decision_pb2_grpc.DecisionServiceStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token is not None else ()
        )
        self._timeout = timeout

    def check(
        self,
        platform: str,
        agent: str,
        principal: str,
        action: str,
        resource: str,
        *,
        resource_id: str = "",
        principal_type: str = "",
        delegation_chain: Sequence[str] = (),
        agent_attributes: Mapping[str, Any] | None = None,
        principal_attributes: Mapping[str, Any] | None = None,
        action_attributes: Mapping[str, Any] | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        request_id: str = "",
    ) -> CheckResult:
        """Decides one action; the arguments are those of :class:`Check`.

        Raises :class:`WardenError` when Warden refuses the request (e.g.
        ``INVALID_ARGUMENT``) or cannot be reached.
        """
        return self.decide(
            Check(
                platform,
                agent,
                principal,
                action,
                resource,
                resource_id=resource_id,
                principal_type=principal_type,
                delegation_chain=delegation_chain,
                agent_attributes=agent_attributes,
                principal_attributes=principal_attributes,
                action_attributes=action_attributes,
                resource_attributes=resource_attributes,
                context=context,
                request_id=request_id,
            )
        )

    def decide(self, check: Check) -> CheckResult:
        """Decides one :class:`Check`, as :meth:`check` does."""
        try:
            response = self._stub.Check(
                check.to_proto(), timeout=self._timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise WardenError.from_rpc_error(error) from None
        return CheckResult.from_proto(response)

    def batch_check(self, checks: Iterable[Check]) -> list[CheckResult | ItemError]:
        """Decides several actions against one policy generation; the answers
        come back in request order, an :class:`ItemError` for each invalid item."""
        request = decision_pb2.BatchCheckRequest(items=[c.to_proto() for c in checks])
        try:
            response = self._stub.BatchCheck(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise WardenError.from_rpc_error(error) from None
        return [_batch_item(result) for result in response.results]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Warden:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _struct(values: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    if values is None:
        return None
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def _batch_item(result: decision_pb2.BatchCheckResult) -> CheckResult | ItemError:
    if result.WhichOneof("result") == "response":
        return CheckResult.from_proto(result.response)
    error = result.error
    return ItemError(
        code=_CODES.get(error.code, grpc.StatusCode.UNKNOWN),
        message=error.message,
        field=error.field or None,
    )


def _bad_request_field(call: grpc.Call) -> str | None:
    try:
        status = rpc_status.from_call(call)
    except ValueError:
        return None
    if status is None:
        return None
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request) and bad_request.field_violations:
            return str(bad_request.field_violations[0].field)
    return None
