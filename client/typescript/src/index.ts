/**
 * TypeScript client for Warden's decision plane.
 *
 * The wire types under `./generated` are generated from `proto/` by
 * `proto-loader-gen-types` (`npm run generate`), and the same `.proto` files
 * are loaded at run time, so the two cannot drift apart.
 *
 * ```ts
 * const warden = new Warden("127.0.0.1:50051");
 * const result = await warden.check({
 *   platform: "copilot-studio", agent: "expense-assistant", principal: "elena.schmidt",
 *   action: "expenses.submit", resource: "expense", resourceId: "exp-42",
 * });
 * if (result.allowed) { ... }
 * ```
 *
 * A `REQUIRE_APPROVAL` result that carries an `accessRequest` can be put to a
 * person, and the check repeated with the approval they give:
 *
 * ```ts
 * if (result.accessRequest) {
 *   let task = await warden.requestApproval(check, result.accessRequest, "quarter close");
 *   for await (task of warden.watchApprovalTask(task.id)) {
 *     // the last one has ended: approved, denied, expired or cancelled
 *   }
 *   if (task.approval) result = await warden.check({ ...check, approval: task.approval });
 * }
 * ```
 *
 * Which of the platform's tools may the agent use here? Every candidate is
 * answered with the decision a check would get; `allowedActions` keeps the
 * `ALLOW` ones, following the pages:
 *
 * ```ts
 * const tools = await warden.allowedActions({
 *   platform: "support-desk", agent: "access-admin", principal: "amelia.tanaka",
 *   resource: "account", resourceId: "acct-7", candidates: ["accounts.read", "accounts.delete"],
 * });
 * ```
 */

import * as path from "node:path";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

// approval.proto imports decision.proto: its package type covers both services.
import type { ProtoGrpcType } from "./generated/approval";
import type { Struct } from "./generated/google/protobuf/Struct";
import type { Value } from "./generated/google/protobuf/Value";
import type { AccessRequest__Output } from "./generated/warden/v1/AccessRequest";
import type { ApprovalRef as ApprovalRefMessage } from "./generated/warden/v1/ApprovalRef";
import type { ApprovalRef__Output } from "./generated/warden/v1/ApprovalRef";
import type { ApprovalServiceClient } from "./generated/warden/v1/ApprovalService";
import type { ApprovalTask__Output } from "./generated/warden/v1/ApprovalTask";
import type { BatchCheckResult__Output } from "./generated/warden/v1/BatchCheckResult";
import type { CheckRequest } from "./generated/warden/v1/CheckRequest";
import type { CheckResponse__Output } from "./generated/warden/v1/CheckResponse";
import type { DecisionServiceClient } from "./generated/warden/v1/DecisionService";
import type { SearchActionsRequest } from "./generated/warden/v1/SearchActionsRequest";
import type { SearchActionsResponse__Output } from "./generated/warden/v1/SearchActionsResponse";
import { badRequestField } from "./status";

/** Warden's answer. `DECISION_UNSPECIFIED` is never sent and reads as `DENY`. */
export type Decision = "ALLOW" | "DENY" | "REQUIRE_APPROVAL";

/** What `google.protobuf.Struct` can carry. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/**
 * An approval a person gave, as `getApprovalTask()` hands it over: pass it
 * back unchanged as `approval` of the approved check.
 */
export interface ApprovalRef {
  /** `apr_...`. */
  id: string;
  /** RFC 3339. */
  approvedAt: string;
  /** RFC 3339; the approval is refused from this time on. */
  approvedUntil: string;
  /** The signed statement of the approval; opaque, sent back byte for byte. */
  state: string;
}

/** Who may approve a requestable decision, as the policy says. */
export interface ApprovalRequirement {
  /** `group:<id>` or `user:<id>`. */
  approvers: string[];
  /** Whether the principal the agent acts for may approve. */
  selfApproval: boolean;
  /** The longest validity an approver may give. */
  maxTtlSeconds: number;
  /** How many checks one approval allows. */
  uses: number;
  /** A name for approval UIs, e.g. `acl_change`. */
  template: string;
}

/**
 * What a `REQUIRE_APPROVAL` result needs to ask a person: pass it to
 * `requestApproval()` with the check it answered.
 */
export interface AccessRequest {
  /** The decision's id. */
  evaluationId: string;
  /** RFC 3339: when the decision was made. */
  evaluatedAt: string;
  /** RFC 3339: the request must be submitted before this time. */
  expiresAt: string;
  /** Binds the decision to the exact request; opaque. */
  bindingToken: string;
  requirement?: ApprovalRequirement;
}

/** The approval an `ALLOW` used. */
export interface ApprovalUse {
  id: string;
  /** RFC 3339. */
  approvedUntil: string;
  /** Uses left after this one. */
  usesLeft: number;
}

/** Where a request for approval stands. `UNSPECIFIED` is never sent. */
export type ApprovalTaskState =
  | "UNSPECIFIED"
  | "PENDING"
  | "APPROVED"
  | "DENIED"
  | "EXPIRED"
  | "CANCELLED";

/** A request for approval, as its platform sees it. */
export interface ApprovalTask {
  /** `arq_...`. */
  id: string;
  state: ApprovalTaskState;
  /** True once approved, denied, expired or cancelled. */
  ended: boolean;
  /** RFC 3339. */
  createdAt: string;
  /** RFC 3339: a task still pending then expires. */
  expiresAt: string;
  /** The `REQUIRE_APPROVAL` decision it asks about. */
  evaluationId: string;
  /** RFC 3339, once decided, cancelled or expired; empty before. */
  decidedAt: string;
  /** `APPROVED` only: pass it back as `approval` of the check. */
  approval?: ApprovalRef;
  /** The approver's note (approved or denied) or the cancel reason. */
  note: string;
}

/** One question: may `agent` of `platform`, acting for `principal`, do `action` on `resource`? */
export interface Check {
  platform: string;
  agent: string;
  principal: string;
  action: string;
  /** The resource's type, e.g. `expense`. */
  resource: string;
  resourceId?: string;
  /** `user` when left out. */
  principalType?: string;
  /** The actors between the principal and this agent, outermost first, each `kind:id`. */
  delegationChain?: string[];
  /** Who will see the result: `user:ID`, `group:ID`, `public` or `external:DOMAIN`. */
  audience?: string[];
  agentAttributes?: JsonObject;
  principalAttributes?: JsonObject;
  actionAttributes?: JsonObject;
  resourceAttributes?: JsonObject;
  context?: JsonObject;
  /** Echoed in the result and kept in the audit record. */
  requestId?: string;
  /** An approval given for exactly this check (see `ApprovalTask`). */
  approval?: ApprovalRef;
}

/** The outcome of one check. */
export interface CheckResult {
  decision: Decision;
  /** True only for `ALLOW`: `REQUIRE_APPROVAL` means a person must confirm first. */
  allowed: boolean;
  reasons: string[];
  decisionId: string;
  requestId: string;
  policyRevision: string;
  snapshotVersions: Record<string, string>;
  /** The kill switch that decided the check, if one did. */
  killSwitchId?: string;
  /** `REQUIRE_APPROVAL` only, when a person can be asked: how to ask (`requestApproval()`). */
  accessRequest?: AccessRequest;
  /** Set when the check carried an approval and the answer is `ALLOW`. */
  approval?: ApprovalUse;
  /**
   * When the check carried an approval that was refused: `request` (ask for a
   * new approval), `retry` (after `retryAfterSeconds`) or `none`; else empty.
   */
  nextAction: string;
  retryAfterSeconds: number;
  /** A disclosure refused for its audience: who lacks access (at most 10 named). */
  audience?: { members: number; lackingCount: number; lacking: string[] };
}

/**
 * What `searchActions()` looks for: the actions `agent` of `platform`, acting
 * for `principal`, may take on `resource`. A check's fields without the
 * action, plus the candidates and the page.
 */
export interface ActionSearch {
  platform: string;
  agent: string;
  principal: string;
  /** The resource's type, e.g. `account`. */
  resource: string;
  resourceId?: string;
  /** `user` when left out. */
  principalType?: string;
  /** The actors between the principal and this agent, outermost first, each `kind:id`. */
  delegationChain?: string[];
  agentAttributes?: JsonObject;
  principalAttributes?: JsonObject;
  resourceAttributes?: JsonObject;
  context?: JsonObject;
  /** Kept in the search's audit record. */
  requestId?: string;
  /**
   * The action names to decide on, e.g. the platform's tools: each is
   * answered, `DENY` included, in this order. Left out, Warden proposes the
   * candidates and only the `ALLOW` and `REQUIRE_APPROVAL` ones come back.
   */
  candidates?: string[];
  /** `nextToken` of the previous page, with the same search; left out for the first page. */
  pageToken?: string;
  /** Most results in this page; 0 or left out: only the server's evaluation cap. */
  limit?: number;
}

/** One action's outcome in a search: the decision and reasons a check with it would get. */
export interface ActionResult {
  name: string;
  decision: Decision;
  /** True only for `ALLOW`: `REQUIRE_APPROVAL` means a person must confirm first. */
  allowed: boolean;
  reasons: string[];
}

/** One page of `searchActions()`. */
export interface SearchActionsResult {
  /**
   * With candidates: each candidate's outcome, in the order given (this
   * page's share of them). Without: the `ALLOW` and `REQUIRE_APPROVAL`
   * actions, sorted by name.
   */
  results: ActionResult[];
  /** Pass it back as `pageToken` for the next page; empty when the search is complete. */
  nextToken: string;
  /** True on the last page (`nextToken` is empty). */
  done: boolean;
  /** Results in this page. */
  count: number;
  /** Results of the whole search, known only on its last page. */
  total?: number;
  /** Candidates evaluated for this page. */
  evaluated: number;
  /** Names the search's audit record. */
  searchId: string;
  policyRevision: string;
  snapshotVersions: Record<string, string>;
}

/** Options of `watchApprovalTask()`. */
export interface WatchOptions {
  /** A deadline for the whole watch in milliseconds; by default it lasts as long as the task. */
  timeoutMs?: number;
}

/** Why one item of a batch was not decided. */
export interface ItemError {
  /** The status code `check()` would have failed with. */
  code: grpc.status;
  /** The code's name, e.g. `INVALID_ARGUMENT`. */
  codeName: string;
  message: string;
  /** The offending field, e.g. `agent.id`, when one is to blame. */
  field?: string;
}

/** One answer of `batchCheck()`, in request order. */
export type BatchItem = { ok: true; result: CheckResult } | { ok: false; error: ItemError };

/**
 * A call Warden refused or that failed: the gRPC status, and the field a
 * `google.rpc.BadRequest` detail blames.
 */
export class WardenError extends Error {
  readonly code: grpc.status;
  readonly codeName: string;
  readonly details: string;
  readonly field?: string;

  constructor(code: grpc.status, details: string, field?: string) {
    const name = codeName(code);
    super(field ? `${name}: ${details} (field: ${field})` : `${name}: ${details}`);
    this.name = "WardenError";
    this.code = code;
    this.codeName = name;
    this.details = details;
    if (field) this.field = field;
  }
}

export interface WardenOptions {
  /** Sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /** PEM CA certificates the server's certificate must chain to; setting it (or `cert`) turns TLS on. */
  ca?: Buffer;
  /** PEM client certificate and key, for servers that map certificates to callers. */
  cert?: Buffer;
  key?: Buffer;
  /** Overrides the name the server's certificate is checked against. */
  serverName?: string;
  /** Deadline of each call in milliseconds (default 5000), except a task watch's. */
  timeoutMs?: number;
  /** Where `warden/v1/*.proto` live (default: the repository's `proto/`). */
  protoDir?: string;
}

/** The repository's `proto/`, seen from `dist/src/index.js`. */
const DEFAULT_PROTO_DIR = path.resolve(__dirname, "..", "..", "..", "..", "proto");

// Must match the flags of `npm run generate`, which the types describe.
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

const DECISIONS: Record<string, Decision> = {
  DECISION_ALLOW: "ALLOW",
  DECISION_DENY: "DENY",
  DECISION_REQUIRE_APPROVAL: "REQUIRE_APPROVAL",
};

const TASK_STATES: Record<string, ApprovalTaskState> = {
  APPROVAL_TASK_STATE_PENDING: "PENDING",
  APPROVAL_TASK_STATE_APPROVED: "APPROVED",
  APPROVAL_TASK_STATE_DENIED: "DENIED",
  APPROVAL_TASK_STATE_EXPIRED: "EXPIRED",
  APPROVAL_TASK_STATE_CANCELLED: "CANCELLED",
};

/** A connection to Warden's decision listener. */
export class Warden {
  private readonly client: DecisionServiceClient;
  private readonly approvals: ApprovalServiceClient;
  private readonly metadata: grpc.Metadata;
  private readonly timeoutMs: number;

  /** `address` is `host:port`, or a URL: `https://` turns TLS on. */
  constructor(address: string, options: WardenOptions = {}) {
    const proto = loadProto(options.protoDir ?? DEFAULT_PROTO_DIR);

    const tls =
      address.startsWith("https://") || options.ca !== undefined || options.cert !== undefined;
    const target = address.replace(/^https?:\/\//, "");
    const credentials = tls
      ? grpc.credentials.createSsl(options.ca ?? null, options.key ?? null, options.cert ?? null)
      : grpc.credentials.createInsecure();
    const channelOptions: grpc.ChannelOptions = {};
    if (options.serverName !== undefined) {
      channelOptions["grpc.ssl_target_name_override"] = options.serverName;
    }
    this.client = new proto.warden.v1.DecisionService(target, credentials, channelOptions);
    // The same connection: closing the decision client closes both.
    this.approvals = new proto.warden.v1.ApprovalService(target, credentials, {
      ...channelOptions,
      channelOverride: this.client.getChannel(),
    });

    this.metadata = new grpc.Metadata();
    if (options.token !== undefined) {
      this.metadata.set("authorization", `Bearer ${options.token}`);
    }
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  /** Decides one action; rejects with a `WardenError` when Warden refuses the request. */
  check(check: Check): Promise<CheckResult> {
    return new Promise((resolve, reject) => {
      this.client.check(
        toRequest(check),
        this.metadata,
        this.callOptions(),
        settle(resolve, reject, toResult),
      );
    });
  }

  /** Decides several actions against one policy generation; answers come back in request order. */
  batchCheck(checks: readonly Check[]): Promise<BatchItem[]> {
    return new Promise((resolve, reject) => {
      this.client.batchCheck(
        { items: checks.map(toRequest) },
        this.metadata,
        this.callOptions(),
        settle(resolve, reject, (response) => response.results.map(toBatchItem)),
      );
    });
  }

  /**
   * Which actions may the agent take on this resource for this principal?
   * One page of the answer. With `candidates` (e.g. the platform's tool
   * catalogue), every candidate is answered in the order given: the
   * tool-filtering call. Each outcome is the decision a `check()` with that
   * action would get now (no limit is spent; there is no audience, so
   * disclosing actions such as `*.share` are `DENY` `audience_missing`).
   * Pass `nextToken` back as `pageToken`, with the same search, for the
   * next page. Rejects with a `WardenError` when Warden refuses the request
   * (`FAILED_PRECONDITION` for a token the policy or snapshots changed
   * under: start again).
   */
  searchActions(search: ActionSearch): Promise<SearchActionsResult> {
    return new Promise((resolve, reject) => {
      this.client.searchActions(
        toSearchRequest(search),
        this.metadata,
        this.callOptions(),
        settle(resolve, reject, toSearchResult),
      );
    });
  }

  /**
   * Every page of `searchActions()`, following `nextToken` to the end: with
   * `candidates`, each one's outcome in their order (the tool filter).
   * `limit` applies to each page.
   */
  async searchActionsAll(search: Omit<ActionSearch, "pageToken">): Promise<ActionResult[]> {
    const results: ActionResult[] = [];
    let pageToken = "";
    for (;;) {
      const page = await this.searchActions({ ...search, pageToken });
      results.push(...page.results);
      if (page.done) return results;
      pageToken = page.nextToken;
    }
  }

  /**
   * The names `searchActionsAll()` answers `ALLOW`, in its order: the tools
   * to offer. Leaves out `REQUIRE_APPROVAL` (use `searchActionsAll()` to
   * offer those behind a confirmation).
   */
  async allowedActions(search: Omit<ActionSearch, "pageToken">): Promise<string[]> {
    const results = await this.searchActionsAll(search);
    return results.filter((result) => result.allowed).map((result) => result.name);
  }

  /**
   * Asks a person to approve `check`, which got `REQUIRE_APPROVAL` with
   * `accessRequest` (`CheckResult.accessRequest`). `check` must be the one
   * decided, unchanged, and be submitted before `accessRequest.expiresAt`;
   * `justification` is shown to approvers. Submitting the same decision again
   * returns the same task.
   */
  requestApproval(
    check: Check,
    accessRequest: AccessRequest,
    justification = "",
  ): Promise<ApprovalTask> {
    return new Promise((resolve, reject) => {
      this.approvals.requestApproval(
        {
          request: toRequest(check),
          evaluation_id: accessRequest.evaluationId,
          binding_token: accessRequest.bindingToken,
          justification,
        },
        this.metadata,
        this.callOptions(),
        settle(resolve, reject, toTask),
      );
    });
  }

  /** The task now; `NOT_FOUND` for another platform's task. */
  getApprovalTask(taskId: string): Promise<ApprovalTask> {
    return new Promise((resolve, reject) => {
      this.approvals.getApprovalTask(
        { task_id: taskId },
        this.metadata,
        this.callOptions(),
        settle(resolve, reject, toTask),
      );
    });
  }

  /**
   * The task now, then each change, until it ends (the last one is `ended`).
   * People take minutes, so the watch has no deadline unless `timeoutMs`
   * gives it one. Leaving the loop early cancels the watch.
   */
  async *watchApprovalTask(
    taskId: string,
    options: WatchOptions = {},
  ): AsyncGenerator<ApprovalTask, void, undefined> {
    const callOptions: grpc.CallOptions =
      options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs };
    const call = this.approvals.watchApprovalTask({ task_id: taskId }, this.metadata, callOptions);
    // Cancelling reports CANCELLED as an error; nobody is listening by then.
    call.on("error", () => undefined);
    try {
      for await (const task of call as AsyncIterable<ApprovalTask__Output>) {
        yield toTask(task);
      }
    } catch (error) {
      throw isServiceError(error) ? toWardenError(error) : error;
    } finally {
      call.cancel();
    }
  }

  /** Withdraws a pending task; `FAILED_PRECONDITION` once it has ended. */
  cancelApprovalTask(taskId: string, reason = ""): Promise<ApprovalTask> {
    return new Promise((resolve, reject) => {
      this.approvals.cancelApprovalTask(
        { task_id: taskId, reason },
        this.metadata,
        this.callOptions(),
        settle(resolve, reject, toTask),
      );
    });
  }

  /** Closes the connection. */
  close(): void {
    this.client.close();
  }

  private callOptions(): grpc.CallOptions {
    return { deadline: Date.now() + this.timeoutMs };
  }
}

// Must match the files `npm run generate` reads.
const PROTOS = ["warden/v1/decision.proto", "warden/v1/approval.proto"];

const loaded = new Map<string, ProtoGrpcType>();

function loadProto(protoDir: string): ProtoGrpcType {
  let proto = loaded.get(protoDir);
  if (proto === undefined) {
    const definition = protoLoader.loadSync(PROTOS, {
      ...LOADER_OPTIONS,
      includeDirs: [protoDir],
    });
    proto = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
    loaded.set(protoDir, proto);
  }
  return proto;
}

function codeName(code: grpc.status): string {
  return grpc.status[code] ?? `CODE_${code}`;
}

/** A callback that settles a promise with the mapped response, or a `WardenError`. */
function settle<T, R>(
  resolve: (value: R) => void,
  reject: (reason: WardenError) => void,
  map: (response: T) => R,
): grpc.requestCallback<T> {
  return (error, response) => {
    if (error) reject(toWardenError(error));
    else if (response) resolve(map(response));
    else reject(new WardenError(grpc.status.INTERNAL, "empty response"));
  };
}

function toRequest(check: Check): CheckRequest {
  return {
    platform: check.platform,
    agent: { id: check.agent, attributes: toStruct(check.agentAttributes) },
    principal: {
      type: check.principalType ?? "",
      id: check.principal,
      attributes: toStruct(check.principalAttributes),
    },
    delegation_chain: check.delegationChain ?? [],
    audience: check.audience ?? [],
    action: { name: check.action, attributes: toStruct(check.actionAttributes) },
    resource: {
      type: check.resource,
      id: check.resourceId ?? "",
      attributes: toStruct(check.resourceAttributes),
    },
    context: toStruct(check.context),
    request_id: check.requestId ?? "",
    approval: check.approval ? toApprovalRefMessage(check.approval) : null,
  };
}

function toSearchRequest(search: ActionSearch): SearchActionsRequest {
  return {
    platform: search.platform,
    agent: { id: search.agent, attributes: toStruct(search.agentAttributes) },
    principal: {
      type: search.principalType ?? "",
      id: search.principal,
      attributes: toStruct(search.principalAttributes),
    },
    delegation_chain: search.delegationChain ?? [],
    resource: {
      type: search.resource,
      id: search.resourceId ?? "",
      attributes: toStruct(search.resourceAttributes),
    },
    context: toStruct(search.context),
    request_id: search.requestId ?? "",
    candidates: search.candidates ?? [],
    page: { token: search.pageToken ?? "", limit: search.limit ?? 0 },
  };
}

function toApprovalRefMessage(approval: ApprovalRef): ApprovalRefMessage {
  return {
    id: approval.id,
    approved_at: approval.approvedAt,
    approved_until: approval.approvedUntil,
    state: approval.state,
  };
}

function toApprovalRef(approval: ApprovalRef__Output): ApprovalRef {
  return {
    id: approval.id,
    approvedAt: approval.approved_at,
    approvedUntil: approval.approved_until,
    state: approval.state,
  };
}

function toAccessRequest(access: AccessRequest__Output): AccessRequest {
  const result: AccessRequest = {
    evaluationId: access.evaluation_id,
    evaluatedAt: access.evaluated_at,
    expiresAt: access.expires_at,
    bindingToken: access.binding_token,
  };
  const requirement = access.requirement;
  if (requirement) {
    result.requirement = {
      approvers: requirement.approvers,
      selfApproval: requirement.self_approval,
      maxTtlSeconds: Number(requirement.max_ttl_seconds),
      uses: requirement.uses,
      template: requirement.template,
    };
  }
  return result;
}

function toTask(task: ApprovalTask__Output): ApprovalTask {
  const state = TASK_STATES[task.state] ?? "UNSPECIFIED";
  const result: ApprovalTask = {
    id: task.id,
    state,
    ended: state !== "PENDING" && state !== "UNSPECIFIED",
    createdAt: task.created_at,
    expiresAt: task.expires_at,
    evaluationId: task.evaluation_id,
    decidedAt: task.decided_at,
    note: task.note,
  };
  if (task.approval) result.approval = toApprovalRef(task.approval);
  return result;
}

function toStruct(object: JsonObject | undefined): Struct | null {
  if (object === undefined) return null;
  const fields: Record<string, Value> = {};
  for (const [key, value] of Object.entries(object)) {
    fields[key] = toValue(value);
  }
  return { fields };
}

function toValue(value: JsonValue): Value {
  if (value === null) return { nullValue: "NULL_VALUE" };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  switch (typeof value) {
    case "boolean":
      return { boolValue: value };
    case "number":
      return { numberValue: value };
    case "string":
      return { stringValue: value };
    default:
      return { structValue: toStruct(value) };
  }
}

function toResult(response: CheckResponse__Output): CheckResult {
  const decision = DECISIONS[response.decision] ?? "DENY";
  const result: CheckResult = {
    decision,
    allowed: decision === "ALLOW",
    reasons: response.reasons,
    decisionId: response.decision_id,
    requestId: response.request_id,
    policyRevision: response.policy_revision,
    snapshotVersions: response.snapshot_versions,
    nextAction: response.next_action,
    retryAfterSeconds: response.retry_after_seconds,
  };
  if (response.kill_switch) result.killSwitchId = response.kill_switch.id;
  if (response.audience) {
    result.audience = {
      members: response.audience.members,
      lackingCount: response.audience.lacking_count,
      lacking: response.audience.lacking,
    };
  }
  if (response.access_request) result.accessRequest = toAccessRequest(response.access_request);
  if (response.approval) {
    result.approval = {
      id: response.approval.id,
      approvedUntil: response.approval.approved_until,
      usesLeft: response.approval.uses_left,
    };
  }
  return result;
}

function toSearchResult(response: SearchActionsResponse__Output): SearchActionsResult {
  const page = response.page;
  const nextToken = page?.next_token ?? "";
  const result: SearchActionsResult = {
    results: response.results.map((item) => {
      const decision = DECISIONS[item.decision] ?? "DENY";
      return {
        name: item.name,
        decision,
        allowed: decision === "ALLOW",
        reasons: item.reasons,
      };
    }),
    nextToken,
    done: nextToken === "",
    count: page?.count ?? 0,
    evaluated: page?.evaluated ?? 0,
    searchId: response.search_id,
    policyRevision: response.policy_revision,
    snapshotVersions: response.snapshot_versions,
  };
  // A uint64 the loader gives as a string; absent before the last page.
  if (page?.total !== undefined) result.total = Number(page.total);
  return result;
}

function toBatchItem(item: BatchCheckResult__Output): BatchItem {
  if (item.result === "response" && item.response) {
    return { ok: true, result: toResult(item.response) };
  }
  const error = item.error ?? {
    code: grpc.status.INTERNAL,
    message: "empty batch result",
    field: "",
  };
  const itemError: ItemError = {
    code: error.code,
    codeName: codeName(error.code),
    message: error.message,
  };
  if (error.field) itemError.field = error.field;
  return { ok: false, error: itemError };
}

function isServiceError(error: unknown): error is grpc.ServiceError {
  return error instanceof Error && typeof (error as Partial<grpc.ServiceError>).code === "number";
}

function toWardenError(error: grpc.ServiceError): WardenError {
  return new WardenError(error.code, error.details, badRequestField(error.metadata));
}
