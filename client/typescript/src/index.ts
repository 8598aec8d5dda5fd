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
 */

import * as path from "node:path";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

import type { ProtoGrpcType } from "./generated/decision";
import type { Struct } from "./generated/google/protobuf/Struct";
import type { Value } from "./generated/google/protobuf/Value";
import type { BatchCheckResult__Output } from "./generated/warden/v1/BatchCheckResult";
import type { CheckRequest } from "./generated/warden/v1/CheckRequest";
import type { CheckResponse__Output } from "./generated/warden/v1/CheckResponse";
import type { DecisionServiceClient } from "./generated/warden/v1/DecisionService";
import { badRequestField } from "./status";

/** Warden's answer. `DECISION_UNSPECIFIED` is never sent and reads as `DENY`. */
export type Decision = "ALLOW" | "DENY" | "REQUIRE_APPROVAL";

/** What `google.protobuf.Struct` can carry. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
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
  /** The actors between the principal and this agent, outermost first. */
  delegationChain?: string[];
  agentAttributes?: JsonObject;
  principalAttributes?: JsonObject;
  actionAttributes?: JsonObject;
  resourceAttributes?: JsonObject;
  context?: JsonObject;
  /** Echoed in the result and kept in the audit record. */
  requestId?: string;
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
  /** Deadline of each call in milliseconds (default 5000). */
  timeoutMs?: number;
  /** Where `warden/v1/decision.proto` lives (default: the repository's `proto/`). */
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

/** A connection to Warden's decision listener. */
export class Warden {
  private readonly client: DecisionServiceClient;
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

    this.metadata = new grpc.Metadata();
    if (options.token !== undefined) {
      this.metadata.set("authorization", `Bearer ${options.token}`);
    }
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  /** Decides one action; rejects with a `WardenError` when Warden refuses the request. */
  check(check: Check): Promise<CheckResult> {
    return new Promise((resolve, reject) => {
      this.client.check(toRequest(check), this.metadata, this.callOptions(), (error, response) => {
        if (error) reject(toWardenError(error));
        else if (response) resolve(toResult(response));
        else reject(new WardenError(grpc.status.INTERNAL, "empty response"));
      });
    });
  }

  /** Decides several actions against one policy generation; answers come back in request order. */
  batchCheck(checks: readonly Check[]): Promise<BatchItem[]> {
    return new Promise((resolve, reject) => {
      this.client.batchCheck(
        { items: checks.map(toRequest) },
        this.metadata,
        this.callOptions(),
        (error, response) => {
          if (error) reject(toWardenError(error));
          else if (response) resolve(response.results.map(toBatchItem));
          else reject(new WardenError(grpc.status.INTERNAL, "empty response"));
        },
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

const loaded = new Map<string, ProtoGrpcType>();

function loadProto(protoDir: string): ProtoGrpcType {
  let proto = loaded.get(protoDir);
  if (proto === undefined) {
    const definition = protoLoader.loadSync("warden/v1/decision.proto", {
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
    action: { name: check.action, attributes: toStruct(check.actionAttributes) },
    resource: {
      type: check.resource,
      id: check.resourceId ?? "",
      attributes: toStruct(check.resourceAttributes),
    },
    context: toStruct(check.context),
    request_id: check.requestId ?? "",
  };
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
  };
  if (response.kill_switch) result.killSwitchId = response.kill_switch.id;
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

function toWardenError(error: grpc.ServiceError): WardenError {
  return new WardenError(error.code, error.details, badRequestField(error.metadata));
}
