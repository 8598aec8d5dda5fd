// Evaluates a policy.wasm through OPA's JavaScript SDK (npm
// @open-policy-agent/opa-wasm) for Warden's tests.
//
//   node evaluate.js POLICY_WASM CASES_JSON
//
// CASES_JSON is {"memory_pages": N, "data": {...}, "inputs": [...]}; prints a
// JSON array with one result set per input.
"use strict";
const fs = require("fs");
const { loadPolicy } = require("@open-policy-agent/opa-wasm");

async function main() {
  const [wasmPath, casesPath] = process.argv.slice(2);
  const cases = JSON.parse(fs.readFileSync(casesPath, "utf8"));
  // The SDK allocates 5 pages unless told; Warden's modules declare more.
  const policy = await loadPolicy(fs.readFileSync(wasmPath), { initial: cases.memory_pages });
  policy.setData(cases.data);
  const results = cases.inputs.map((input) => policy.evaluate(input));
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
