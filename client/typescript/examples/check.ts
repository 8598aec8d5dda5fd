/**
 * Asks Warden one question and prints the answer, like `wardenctl check`:
 *
 *   node dist/examples/check.js --addr 127.0.0.1:50051 --platform copilot-studio \
 *     --agent expense-assistant --principal elena.schmidt --action expenses.submit \
 *     --resource expense:exp-42 [--token T] [--ca ca.pem] [--json]
 *
 * Exits 0 for ALLOW, 1 for DENY, 2 for REQUIRE_APPROVAL, 3 when Warden
 * refused the request and 4 when it could not be reached.
 */

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { status } from "@grpc/grpc-js";

import { Warden, WardenError, type WardenOptions } from "../src";

const USAGE = `usage: check.js [--addr HOST:PORT] [--token T] [--ca ca.pem] [--platform P]
  [--agent A] [--principal U] [--action NAME] [--resource TYPE[:ID]] [--json]`;

const EXIT_CODES = { ALLOW: 0, DENY: 1, REQUIRE_APPROVAL: 2 } as const;

async function main(): Promise<number> {
  const { values: args } = parseArgs({
    options: {
      addr: { type: "string", default: "127.0.0.1:50051" },
      token: { type: "string" },
      ca: { type: "string" },
      platform: { type: "string", default: "copilot-studio" },
      agent: { type: "string", default: "expense-assistant" },
      principal: { type: "string", default: "elena.schmidt" },
      action: { type: "string", default: "expenses.submit" },
      resource: { type: "string", default: "expense:exp-42" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const options: WardenOptions = {};
  if (args.token !== undefined) options.token = args.token;
  if (args.ca !== undefined) options.ca = readFileSync(args.ca);
  const [resource = "", resourceId] = args.resource.split(/:(.*)/s);

  const warden = new Warden(args.addr, options);
  try {
    const result = await warden.check({
      platform: args.platform,
      agent: args.agent,
      principal: args.principal,
      action: args.action,
      resource,
      ...(resourceId ? { resourceId } : {}),
    });
    if (args.json) {
      console.log(JSON.stringify(result));
    } else {
      console.log(result.decision);
      for (const reason of result.reasons) console.log(`  reason: ${reason}`);
      console.log(`  decision_id: ${result.decisionId}`);
    }
    return EXIT_CODES[result.decision];
  } catch (error) {
    if (!(error instanceof WardenError)) throw error;
    if (args.json) {
      const { codeName: code, details: message, field = null } = error;
      console.log(JSON.stringify({ error: { code, message, field } }));
    } else {
      console.error(`warden: ${error.message}`);
    }
    return error.code === status.UNAVAILABLE || error.code === status.DEADLINE_EXCEEDED ? 4 : 3;
  } finally {
    warden.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 4;
  },
);
