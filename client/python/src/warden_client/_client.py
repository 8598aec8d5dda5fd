"""The wrapper around the generated ``warden.v1.DecisionService`` and
``warden.v1.ApprovalService`` stubs."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ._pb import approval_pb2, approval_pb2_grpc, decision_pb2, decision_pb2_grpc

__all__ = [
    "AccessRequest",
    "ActionResult",
    "ApprovalRef",
    "ApprovalRequirement",
    "ApprovalTask",
    "ApprovalTaskState",
    "ApprovalUse",
    "Check",
    "CheckResult",
    "Decision",
    "ItemError",
    "SearchActionsResult",
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


class ApprovalTaskState(enum.Enum):
    """Where a request for approval stands. ``UNSPECIFIED`` is never sent."""

    UNSPECIFIED = "UNSPECIFIED"
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


_TASK_STATES = {
    approval_pb2.APPROVAL_TASK_STATE_PENDING: ApprovalTaskState.PENDING,
    approval_pb2.APPROVAL_TASK_STATE_APPROVED: ApprovalTaskState.APPROVED,
    approval_pb2.APPROVAL_TASK_STATE_DENIED: ApprovalTaskState.DENIED,
    approval_pb2.APPROVAL_TASK_STATE_EXPIRED: ApprovalTaskState.EXPIRED,
    approval_pb2.APPROVAL_TASK_STATE_CANCELLED: ApprovalTaskState.CANCELLED,
}


@dataclass(frozen=True)
class ApprovalRef:
    """An approval a person gave, as :meth:`Warden.get_approval_task` hands it
    over: pass it back unchanged as ``approval`` of the approved check."""

    id: str
    """``apr_...``."""
    approved_at: str
    """RFC 3339."""
    approved_until: str
    """RFC 3339; the approval is refused from this time on."""
    state: str
    """The signed statement of the approval; opaque, sent back byte for byte."""

    def to_proto(self) -> decision_pb2.ApprovalRef:
        return decision_pb2.ApprovalRef(
            id=self.id,
            approved_at=self.approved_at,
            approved_until=self.approved_until,
            state=self.state,
        )

    @classmethod
    def from_proto(cls, approval: decision_pb2.ApprovalRef) -> ApprovalRef:
        return cls(
            id=approval.id,
            approved_at=approval.approved_at,
            approved_until=approval.approved_until,
            state=approval.state,
        )


@dataclass(frozen=True)
class ApprovalRequirement:
    """Who may approve a requestable decision, as the policy says."""

    approvers: tuple[str, ...]
    """``group:<id>`` or ``user:<id>``."""
    self_approval: bool
    """Whether the principal the agent acts for may approve."""
    max_ttl_seconds: int
    """The longest validity an approver may give."""
    uses: int
    """How many checks one approval allows."""
    template: str
    """A name for approval UIs, e.g. ``acl_change``."""

    @classmethod
    def from_proto(
        cls, requirement: decision_pb2.ApprovalRequirement
    ) -> ApprovalRequirement:
        return cls(
            approvers=tuple(requirement.approvers),
            self_approval=requirement.self_approval,
            max_ttl_seconds=requirement.max_ttl_seconds,
            uses=requirement.uses,
            template=requirement.template,
        )


@dataclass(frozen=True)
class AccessRequest:
    """What a REQUIRE_APPROVAL result needs to ask a person: pass it to
    :meth:`Warden.request_approval` with the check it answered."""

    evaluation_id: str
    """The decision's id."""
    evaluated_at: str
    """RFC 3339: when the decision was made."""
    expires_at: str
    """RFC 3339: the request must be submitted before this time."""
    binding_token: str
    """Binds the decision to the exact request; opaque."""
    requirement: ApprovalRequirement | None = None

    @classmethod
    def from_proto(cls, access: decision_pb2.AccessRequest) -> AccessRequest:
        return cls(
            evaluation_id=access.evaluation_id,
            evaluated_at=access.evaluated_at,
            expires_at=access.expires_at,
            binding_token=access.binding_token,
            requirement=(
                ApprovalRequirement.from_proto(access.requirement)
                if access.HasField("requirement")
                else None
            ),
        )


@dataclass(frozen=True)
class ApprovalUse:
    """The approval an ALLOW used."""

    id: str
    approved_until: str
    """RFC 3339."""
    uses_left: int
    """Uses left after this one."""

    @classmethod
    def from_proto(cls, use: decision_pb2.ApprovalUse) -> ApprovalUse:
        return cls(
            id=use.id, approved_until=use.approved_until, uses_left=use.uses_left
        )


@dataclass(frozen=True)
class ApprovalTask:
    """A request for approval, as its platform sees it."""

    id: str
    """``arq_...``."""
    state: ApprovalTaskState
    created_at: str
    """RFC 3339."""
    expires_at: str
    """RFC 3339: a task still pending then expires."""
    evaluation_id: str
    """The REQUIRE_APPROVAL decision it asks about."""
    decided_at: str = ""
    """RFC 3339, once decided, cancelled or expired."""
    approval: ApprovalRef | None = None
    """APPROVED only: pass it back as ``approval`` of the check."""
    note: str = ""
    """The approver's note (approved or denied) or the cancel reason."""

    @property
    def ended(self) -> bool:
        """True once approved, denied, expired or cancelled."""
        return self.state not in (
            ApprovalTaskState.PENDING,
            ApprovalTaskState.UNSPECIFIED,
        )

    @classmethod
    def from_proto(cls, task: approval_pb2.ApprovalTask) -> ApprovalTask:
        return cls(
            id=task.id,
            state=_TASK_STATES.get(task.state, ApprovalTaskState.UNSPECIFIED),
            created_at=task.created_at,
            expires_at=task.expires_at,
            evaluation_id=task.evaluation_id,
            decided_at=task.decided_at,
            approval=(
                ApprovalRef.from_proto(task.approval)
                if task.HasField("approval")
                else None
            ),
            note=task.note,
        )


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
    approval: ApprovalRef | None = None
    """An approval given for exactly this check (see :class:`ApprovalTask`)."""
    audience: Sequence[str] = ()
    """Who will see the result: ``user:ID``, ``group:ID``, ``public`` or
    ``external:DOMAIN``."""

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
            audience=list(self.audience),
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
            approval=self.approval.to_proto() if self.approval is not None else None,
        )


@dataclass(frozen=True)
class AudienceGap:
    """Who in a check's audience may not read what it discloses."""

    members: int
    lacking_count: int
    lacking: tuple[str, ...]
    """The first of them (at most 10), as ``user:ID``."""


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
    access_request: AccessRequest | None = None
    """REQUIRE_APPROVAL only, when a person can be asked: how to ask
    (:meth:`Warden.request_approval`)."""
    approval: ApprovalUse | None = None
    """Set when the check carried an approval and the answer is ALLOW."""
    next_action: str = ""
    """When the check carried an approval that was refused: ``request`` (ask
    for a new approval), ``retry`` (after ``retry_after_seconds``) or ``none``."""
    retry_after_seconds: int = 0
    audience: AudienceGap | None = None
    """A disclosure refused for its audience: who lacks access."""

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
            access_request=(
                AccessRequest.from_proto(response.access_request)
                if response.HasField("access_request")
                else None
            ),
            approval=(
                ApprovalUse.from_proto(response.approval)
                if response.HasField("approval")
                else None
            ),
            next_action=response.next_action,
            retry_after_seconds=response.retry_after_seconds,
            audience=(
                AudienceGap(
                    members=response.audience.members,
                    lacking_count=response.audience.lacking_count,
                    lacking=tuple(response.audience.lacking),
                )
                if response.HasField("audience")
                else None
            ),
        )


@dataclass(frozen=True)
class ActionResult:
    """One action's outcome in a search: the decision and reasons a check
    with this action would get."""

    name: str
    decision: Decision
    reasons: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        """True only for ALLOW: REQUIRE_APPROVAL means a person must confirm first."""
        return self.decision is Decision.ALLOW

    @classmethod
    def from_proto(cls, result: decision_pb2.ActionResult) -> ActionResult:
        return cls(
            name=result.name,
            decision=_DECISIONS.get(result.decision, Decision.DENY),
            reasons=tuple(result.reasons),
        )


@dataclass(frozen=True)
class SearchActionsResult:
    """One page of :meth:`Warden.search_actions`."""

    results: tuple[ActionResult, ...]
    """With candidates: each candidate's outcome, in the order given (this
    page's share of them). Without: the ALLOW and REQUIRE_APPROVAL actions,
    sorted by name."""
    next_token: str
    """Pass it back as ``page_token`` for the next page; empty when the
    search is complete."""
    count: int
    """Results in this page."""
    total: int | None
    """Results of the whole search, known only on its last page."""
    evaluated: int
    """Candidates evaluated for this page."""
    search_id: str
    """Names the search's audit record."""
    policy_revision: str
    snapshot_versions: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """True on the last page."""
        return not self.next_token

    @classmethod
    def from_proto(
        cls, response: decision_pb2.SearchActionsResponse
    ) -> SearchActionsResult:
        page = response.page
        return cls(
            results=tuple(ActionResult.from_proto(r) for r in response.results),
            next_token=page.next_token,
            count=page.count,
            total=page.total if page.HasField("total") else None,
            evaluated=page.evaluated,
            search_id=response.search_id,
            policy_revision=response.policy_revision,
            snapshot_versions=dict(response.snapshot_versions),
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
    ``timeout`` is each call's deadline in seconds (except a task watch's,
    which lasts as long as the task unless given its own).
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
        self._approvals = approval_pb2_grpc.ApprovalServiceStub(self._channel)
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
        approval: ApprovalRef | None = None,
        audience: Sequence[str] = (),
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
                approval=approval,
                audience=audience,
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

    def search_actions(
        self,
        platform: str,
        agent: str,
        principal: str,
        resource: str,
        *,
        candidates: Sequence[str] = (),
        resource_id: str = "",
        principal_type: str = "",
        delegation_chain: Sequence[str] = (),
        agent_attributes: Mapping[str, Any] | None = None,
        principal_attributes: Mapping[str, Any] | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        request_id: str = "",
        page_token: str = "",
        limit: int = 0,
    ) -> SearchActionsResult:
        """Which actions may ``agent`` take on this resource for ``principal``?
        One page of the answer; the arguments are those of :class:`Check`
        without the action.

        With ``candidates`` (e.g. the platform's tool catalogue), every
        candidate is answered in the order given, DENY included: the
        tool-filtering call. Without, Warden proposes the candidates and
        returns only the ALLOW and REQUIRE_APPROVAL ones. Each outcome is the
        decision a :meth:`check` with that action would get now (no limit is
        spent; there is no audience, so disclosing actions such as
        ``*.share`` are DENY ``audience_missing``).

        ``limit`` caps the results of the page (0: only the server's
        evaluation cap); pass :attr:`SearchActionsResult.next_token` back as
        ``page_token``, with the same arguments, for the next page.

        Raises :class:`WardenError` when Warden refuses the request (e.g.
        ``INVALID_ARGUMENT``, or ``FAILED_PRECONDITION`` for a token the
        policy or snapshots changed under: start again) or cannot be reached.
        """
        request = decision_pb2.SearchActionsRequest(
            platform=platform,
            agent=decision_pb2.Agent(id=agent, attributes=_struct(agent_attributes)),
            principal=decision_pb2.Principal(
                type=principal_type,
                id=principal,
                attributes=_struct(principal_attributes),
            ),
            delegation_chain=list(delegation_chain),
            resource=decision_pb2.Resource(
                type=resource,
                id=resource_id,
                attributes=_struct(resource_attributes),
            ),
            context=_struct(context),
            request_id=request_id,
            candidates=list(candidates),
            page=decision_pb2.PageRequest(token=page_token, limit=limit),
        )
        try:
            response = self._stub.SearchActions(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise WardenError.from_rpc_error(error) from None
        return SearchActionsResult.from_proto(response)

    def search_actions_all(
        self,
        platform: str,
        agent: str,
        principal: str,
        resource: str,
        *,
        candidates: Sequence[str] = (),
        resource_id: str = "",
        principal_type: str = "",
        delegation_chain: Sequence[str] = (),
        agent_attributes: Mapping[str, Any] | None = None,
        principal_attributes: Mapping[str, Any] | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        request_id: str = "",
        limit: int = 0,
    ) -> list[ActionResult]:
        """Every page of :meth:`search_actions`, following ``next_token`` to
        the end: with ``candidates``, each one's outcome in their order (the
        tool filter). The arguments are those of :meth:`search_actions`;
        ``limit`` applies to each page."""
        candidates = list(candidates)
        results: list[ActionResult] = []
        token = ""
        while True:
            page = self.search_actions(
                platform,
                agent,
                principal,
                resource,
                candidates=candidates,
                resource_id=resource_id,
                principal_type=principal_type,
                delegation_chain=delegation_chain,
                agent_attributes=agent_attributes,
                principal_attributes=principal_attributes,
                resource_attributes=resource_attributes,
                context=context,
                request_id=request_id,
                page_token=token,
                limit=limit,
            )
            results.extend(page.results)
            if page.done:
                return results
            token = page.next_token

    def allowed_actions(
        self,
        platform: str,
        agent: str,
        principal: str,
        resource: str,
        *,
        candidates: Sequence[str] = (),
        resource_id: str = "",
        principal_type: str = "",
        delegation_chain: Sequence[str] = (),
        agent_attributes: Mapping[str, Any] | None = None,
        principal_attributes: Mapping[str, Any] | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        request_id: str = "",
        limit: int = 0,
    ) -> list[str]:
        """The names :meth:`search_actions_all` answers ALLOW, in its order:
        the tools to offer. Leaves out REQUIRE_APPROVAL (use
        :meth:`search_actions_all` to offer those behind a confirmation)."""
        results = self.search_actions_all(
            platform,
            agent,
            principal,
            resource,
            candidates=candidates,
            resource_id=resource_id,
            principal_type=principal_type,
            delegation_chain=delegation_chain,
            agent_attributes=agent_attributes,
            principal_attributes=principal_attributes,
            resource_attributes=resource_attributes,
            context=context,
            request_id=request_id,
            limit=limit,
        )
        return [result.name for result in results if result.allowed]

    def request_approval(
        self,
        check: Check,
        access_request: AccessRequest,
        *,
        justification: str = "",
    ) -> ApprovalTask:
        """Asks a person to approve ``check``, which got REQUIRE_APPROVAL with
        ``access_request`` (:attr:`CheckResult.access_request`). ``check`` must
        be the one decided, unchanged, and be submitted before
        ``access_request.expires_at``; ``justification`` is shown to approvers.
        Submitting the same decision again returns the same task."""
        request = approval_pb2.RequestApprovalRequest(
            request=check.to_proto(),
            evaluation_id=access_request.evaluation_id,
            binding_token=access_request.binding_token,
            justification=justification,
        )
        try:
            task = self._approvals.RequestApproval(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise WardenError.from_rpc_error(error) from None
        return ApprovalTask.from_proto(task)

    def get_approval_task(self, task_id: str) -> ApprovalTask:
        """The task now; ``NOT_FOUND`` for another platform's task."""
        request = approval_pb2.GetApprovalTaskRequest(task_id=task_id)
        try:
            task = self._approvals.GetApprovalTask(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise WardenError.from_rpc_error(error) from None
        return ApprovalTask.from_proto(task)

    def watch_approval_task(
        self, task_id: str, *, timeout: float | None = None
    ) -> Iterator[ApprovalTask]:
        """The task now, then each change, until it ends (the last one has
        :attr:`ApprovalTask.ended`). People take minutes, so the watch has no
        deadline unless ``timeout`` (seconds) gives it one. Closing the
        iterator early cancels the watch."""
        request = approval_pb2.GetApprovalTaskRequest(task_id=task_id)
        call = self._approvals.WatchApprovalTask(
            request, timeout=timeout, metadata=self._metadata
        )
        try:
            for task in call:
                yield ApprovalTask.from_proto(task)
        except grpc.RpcError as error:
            raise WardenError.from_rpc_error(error) from None
        finally:
            call.cancel()

    def cancel_approval_task(self, task_id: str, reason: str = "") -> ApprovalTask:
        """Withdraws a pending task; ``FAILED_PRECONDITION`` once it has ended."""
        request = approval_pb2.CancelApprovalTaskRequest(task_id=task_id, reason=reason)
        try:
            task = self._approvals.CancelApprovalTask(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise WardenError.from_rpc_error(error) from None
        return ApprovalTask.from_proto(task)

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
