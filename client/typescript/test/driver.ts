/**
 * Drives the wrapper for the end-to-end tests (tests/tests/clients.rs): reads
 * a script of calls as JSON on standard input and writes their outcomes as
 * JSON on standard output, in the same shape as client/python/tests/driver.py.
 *
 *   {"addr": "...", "token": "...", "ca_file": "...",
 *    "calls": [{"check": {...}}, {"batch": [{...}, ...]},
 *              {"search_actions": {...}}, {"search_actions_all": {...}},
 *              {"allowed_actions": {...}},
 *              {"request_approval": {"request": {...}, "access_request": {...},
 *                                    "justification": "..."}},
 *              {"get_approval_task": "arq_..."},
 *              {"watch_approval_task": "arq_..."},
 *              {"cancel_approval_task": {"task_id": "arq_...", "reason": "..."}}]}
 *
 * Checks use the proto's field names (`resource_id`, `request_id`, ...); a
 * check's `approval` is an `ApprovalRef` and `access_request` an
 * `AccessRequest`, as the proto spells them (and results print them). A
 * search takes a check's fields without the action, plus `candidates`,
 * `page_token` and `limit`, and prints `{"search": {...}}`;
 * `search_actions_all` and `allowed_actions` the same without `page_token`,
 * printing `{"search_actions_all": [RESULT, ...]}` and
 * `{"allowed_actions": [NAME, ...]}`. A watch also writes
 * `{"watch": ID, "state": STATE}` to standard error, a line per task it
 * sees, so the test can act while it waits.
 */

import { readFileSync } from "node:fs";

import {
  type AccessRequest,
  type ActionResult,
  type ActionSearch,
  type ApprovalRef,
  type ApprovalTask,
  type BatchItem,
  type Check,
  type CheckResult,
  type JsonObject,
  type SearchActionsResult,
  Warden,
  WardenError,
  type WardenOptions,
} from "../src";

interface WireCheck {
  platform: string;
  agent: string;
  principal: string;
  action: string;
  resource: string;
  resource_id?: string;
  principal_type?: string;
  delegation_chain?: string[];
  audience?: string[];
  agent_attributes?: JsonObject;
  principal_attributes?: JsonObject;
  action_attributes?: JsonObject;
  resource_attributes?: JsonObject;
  context?: JsonObject;
  request_id?: string;
  approval?: WireApprovalRef | null;
}

interface WireSearch {
  platform: string;
  agent: string;
  principal: string;
  resource: string;
  resource_id?: string;
  principal_type?: string;
  delegation_chain?: string[];
  agent_attributes?: JsonObject;
  principal_attributes?: JsonObject;
  resource_attributes?: JsonObject;
  context?: JsonObject;
  request_id?: string;
  candidates?: string[];
  page_token?: string;
  limit?: number;
}

interface WireApprovalRef {
  id: string;
  approved_at: string;
  approved_until: string;
  state: string;
}

interface WireAccessRequest {
  evaluation_id: string;
  evaluated_at: string;
  expires_at: string;
  binding_token: string;
  requirement?: WireRequirement | null;
}

interface WireRequirement {
  approvers: string[];
  self_approval: boolean;
  max_ttl_seconds: number;
  uses: number;
  template: string;
}

type Call =
  | { check: WireCheck }
  | { batch: WireCheck[] }
  | { search_actions: WireSearch }
  | { search_actions_all: Omit<WireSearch, "page_token"> }
  | { allowed_actions: Omit<WireSearch, "page_token"> }
  | {
      request_approval: {
        request: WireCheck;
        access_request: WireAccessRequest;
        justification?: string;
      };
    }
  | { get_approval_task: string }
  | { watch_approval_task: string }
  | { cancel_approval_task: { task_id: string; reason?: string } };

interface Script {
  addr: string;
  token?: string;
  ca_file?: string;
  calls: Call[];
}

function toCheck(wire: WireCheck): Check {
  const check: Check = {
    platform: wire.platform,
    agent: wire.agent,
    principal: wire.principal,
    action: wire.action,
    resource: wire.resource,
  };
  if (wire.resource_id !== undefined) check.resourceId = wire.resource_id;
  if (wire.principal_type !== undefined) check.principalType = wire.principal_type;
  if (wire.delegation_chain !== undefined) check.delegationChain = wire.delegation_chain;
  if (wire.audience !== undefined) check.audience = wire.audience;
  if (wire.agent_attributes !== undefined) check.agentAttributes = wire.agent_attributes;
  if (wire.principal_attributes !== undefined)
    check.principalAttributes = wire.principal_attributes;
  if (wire.action_attributes !== undefined) check.actionAttributes = wire.action_attributes;
  if (wire.resource_attributes !== undefined) check.resourceAttributes = wire.resource_attributes;
  if (wire.context !== undefined) check.context = wire.context;
  if (wire.request_id !== undefined) check.requestId = wire.request_id;
  if (wire.approval) check.approval = toApprovalRef(wire.approval);
  return check;
}

function toSearch(wire: WireSearch): ActionSearch {
  const search: ActionSearch = {
    platform: wire.platform,
    agent: wire.agent,
    principal: wire.principal,
    resource: wire.resource,
  };
  if (wire.resource_id !== undefined) search.resourceId = wire.resource_id;
  if (wire.principal_type !== undefined) search.principalType = wire.principal_type;
  if (wire.delegation_chain !== undefined) search.delegationChain = wire.delegation_chain;
  if (wire.agent_attributes !== undefined) search.agentAttributes = wire.agent_attributes;
  if (wire.principal_attributes !== undefined)
    search.principalAttributes = wire.principal_attributes;
  if (wire.resource_attributes !== undefined) search.resourceAttributes = wire.resource_attributes;
  if (wire.context !== undefined) search.context = wire.context;
  if (wire.request_id !== undefined) search.requestId = wire.request_id;
  if (wire.candidates !== undefined) search.candidates = wire.candidates;
  if (wire.page_token !== undefined) search.pageToken = wire.page_token;
  if (wire.limit !== undefined) search.limit = wire.limit;
  return search;
}

function toApprovalRef(wire: WireApprovalRef): ApprovalRef {
  return {
    id: wire.id,
    approvedAt: wire.approved_at,
    approvedUntil: wire.approved_until,
    state: wire.state,
  };
}

function toAccessRequest(wire: WireAccessRequest): AccessRequest {
  const access: AccessRequest = {
    evaluationId: wire.evaluation_id,
    evaluatedAt: wire.evaluated_at,
    expiresAt: wire.expires_at,
    bindingToken: wire.binding_token,
  };
  const requirement = wire.requirement;
  if (requirement) {
    access.requirement = {
      approvers: requirement.approvers,
      selfApproval: requirement.self_approval,
      maxTtlSeconds: requirement.max_ttl_seconds,
      uses: requirement.uses,
      template: requirement.template,
    };
  }
  return access;
}

function wireApprovalRef(approval: ApprovalRef | undefined): WireApprovalRef | null {
  if (approval === undefined) return null;
  return {
    id: approval.id,
    approved_at: approval.approvedAt,
    approved_until: approval.approvedUntil,
    state: approval.state,
  };
}

function wireAccessRequest(access: AccessRequest | undefined): WireAccessRequest | null {
  if (access === undefined) return null;
  const requirement = access.requirement;
  return {
    evaluation_id: access.evaluationId,
    evaluated_at: access.evaluatedAt,
    expires_at: access.expiresAt,
    binding_token: access.bindingToken,
    requirement: requirement
      ? {
          approvers: requirement.approvers,
          self_approval: requirement.selfApproval,
          max_ttl_seconds: requirement.maxTtlSeconds,
          uses: requirement.uses,
          template: requirement.template,
        }
      : null,
  };
}

function task(t: ApprovalTask): object {
  return {
    id: t.id,
    state: t.state,
    created_at: t.createdAt,
    expires_at: t.expiresAt,
    evaluation_id: t.evaluationId,
    decided_at: t.decidedAt,
    approval: wireApprovalRef(t.approval),
    note: t.note,
    ended: t.ended,
  };
}

function result(r: CheckResult): object {
  return {
    result: {
      decision: r.decision,
      allowed: r.allowed,
      reasons: r.reasons,
      decision_id: r.decisionId,
      request_id: r.requestId,
      policy_revision: r.policyRevision,
      snapshot_versions: r.snapshotVersions,
      kill_switch_id: r.killSwitchId ?? null,
      access_request: wireAccessRequest(r.accessRequest),
      approval: r.approval
        ? {
            id: r.approval.id,
            approved_until: r.approval.approvedUntil,
            uses_left: r.approval.usesLeft,
          }
        : null,
      next_action: r.nextAction,
      retry_after_seconds: r.retryAfterSeconds,
    },
  };
}

function action(r: ActionResult): object {
  return { name: r.name, decision: r.decision, allowed: r.allowed, reasons: r.reasons };
}

function search(s: SearchActionsResult): object {
  return {
    search: {
      results: s.results.map(action),
      next_token: s.nextToken,
      count: s.count,
      total: s.total ?? null,
      evaluated: s.evaluated,
      done: s.done,
      search_id: s.searchId,
      policy_revision: s.policyRevision,
      snapshot_versions: s.snapshotVersions,
    },
  };
}

function error(codeName: string, message: string, field: string | undefined): object {
  return { error: { code: codeName, message, field: field ?? null } };
}

function batchItem(item: BatchItem): object {
  return item.ok
    ? result(item.result)
    : error(item.error.codeName, item.error.message, item.error.field);
}

async function watch(warden: Warden, taskId: string): Promise<object> {
  const seen: object[] = [];
  for await (const t of warden.watchApprovalTask(taskId)) {
    process.stderr.write(`${JSON.stringify({ watch: taskId, state: t.state })}\n`);
    seen.push(task(t));
  }
  return { tasks: seen };
}

async function run(warden: Warden, call: Call): Promise<object> {
  try {
    if ("check" in call) return result(await warden.check(toCheck(call.check)));
    if ("batch" in call) {
      return { batch: (await warden.batchCheck(call.batch.map(toCheck))).map(batchItem) };
    }
    if ("search_actions" in call) {
      return search(await warden.searchActions(toSearch(call.search_actions)));
    }
    if ("search_actions_all" in call) {
      const found = await warden.searchActionsAll(toSearch(call.search_actions_all));
      return { search_actions_all: found.map(action) };
    }
    if ("allowed_actions" in call) {
      return { allowed_actions: await warden.allowedActions(toSearch(call.allowed_actions)) };
    }
    if ("request_approval" in call) {
      const args = call.request_approval;
      const submitted = await warden.requestApproval(
        toCheck(args.request),
        toAccessRequest(args.access_request),
        args.justification ?? "",
      );
      return { task: task(submitted) };
    }
    if ("get_approval_task" in call) {
      return { task: task(await warden.getApprovalTask(call.get_approval_task)) };
    }
    if ("watch_approval_task" in call) return await watch(warden, call.watch_approval_task);
    const args = call.cancel_approval_task;
    return { task: task(await warden.cancelApprovalTask(args.task_id, args.reason ?? "")) };
  } catch (e) {
    if (e instanceof WardenError) return error(e.codeName, e.details, e.field);
    throw e;
  }
}

async function main(): Promise<void> {
  const script = JSON.parse(readFileSync(0, "utf8")) as Script;
  const options: WardenOptions = {};
  if (script.token !== undefined) options.token = script.token;
  if (script.ca_file !== undefined) options.ca = readFileSync(script.ca_file);
  const warden = new Warden(script.addr, options);
  try {
    const outcomes: object[] = [];
    for (const call of script.calls) outcomes.push(await run(warden, call));
    console.log(JSON.stringify(outcomes));
  } finally {
    warden.close();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
