/**
 * Drives the wrapper for the end-to-end tests (tests/tests/clients.rs): reads
 * a script of calls as JSON on standard input and writes their outcomes as
 * JSON on standard output, in the same shape as client/python/tests/driver.py.
 *
 *   {"addr": "...", "token": "...", "ca_file": "...",
 *    "calls": [{"check": {...}}, {"batch": [{...}, ...]}]}
 *
 * Checks use the proto's field names (`resource_id`, `request_id`, ...).
 */

import { readFileSync } from "node:fs";

import {
  type BatchItem,
  type Check,
  type CheckResult,
  type JsonObject,
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
  agent_attributes?: JsonObject;
  principal_attributes?: JsonObject;
  action_attributes?: JsonObject;
  resource_attributes?: JsonObject;
  context?: JsonObject;
  request_id?: string;
}

type Call = { check: WireCheck } | { batch: WireCheck[] };

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
  if (wire.agent_attributes !== undefined) check.agentAttributes = wire.agent_attributes;
  if (wire.principal_attributes !== undefined)
    check.principalAttributes = wire.principal_attributes;
  if (wire.action_attributes !== undefined) check.actionAttributes = wire.action_attributes;
  if (wire.resource_attributes !== undefined) check.resourceAttributes = wire.resource_attributes;
  if (wire.context !== undefined) check.context = wire.context;
  if (wire.request_id !== undefined) check.requestId = wire.request_id;
  return check;
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

async function run(warden: Warden, call: Call): Promise<object> {
  try {
    if ("check" in call) return result(await warden.check(toCheck(call.check)));
    return { batch: (await warden.batchCheck(call.batch.map(toCheck))).map(batchItem) };
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
