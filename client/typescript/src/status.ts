/**
 * Reading the `google.rpc.BadRequest` detail Warden attaches to
 * INVALID_ARGUMENT: the `grpc-status-details-bin` trailer holds a
 * `google.rpc.Status` whose details are `google.protobuf.Any`s.
 */

import type { Metadata } from "@grpc/grpc-js";
import * as protobuf from "protobufjs";

const BAD_REQUEST_TYPE_URL = "type.googleapis.com/google.rpc.BadRequest";

// The few messages needed, as google/rpc/{status,error_details}.proto define them.
const root = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Any: {
              fields: { type_url: { type: "string", id: 1 }, value: { type: "bytes", id: 2 } },
            },
          },
        },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: "int32", id: 1 },
                message: { type: "string", id: 2 },
                details: { rule: "repeated", type: "google.protobuf.Any", id: 3 },
              },
            },
            BadRequest: {
              fields: {
                field_violations: { rule: "repeated", type: "FieldViolation", id: 1 },
              },
              nested: {
                FieldViolation: {
                  fields: {
                    field: { type: "string", id: 1 },
                    description: { type: "string", id: 2 },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
});
const StatusType = root.lookupType("google.rpc.Status");
const BadRequestType = root.lookupType("google.rpc.BadRequest");

interface AnyMessage {
  type_url: string;
  value: Uint8Array;
}

/** The first field a `google.rpc.BadRequest` detail blames, if the status carries one. */
export function badRequestField(metadata: Metadata | undefined): string | undefined {
  const raw = metadata?.get("grpc-status-details-bin")[0];
  if (!(raw instanceof Buffer)) return undefined;
  try {
    const status = StatusType.toObject(StatusType.decode(raw), { defaults: true }) as {
      details: AnyMessage[];
    };
    for (const detail of status.details) {
      if (detail.type_url !== BAD_REQUEST_TYPE_URL) continue;
      const badRequest = BadRequestType.toObject(BadRequestType.decode(detail.value), {
        defaults: true,
      }) as { field_violations: { field: string }[] };
      const field = badRequest.field_violations[0]?.field;
      if (field) return field;
    }
  } catch {
    // A detail we cannot read leaves the code and message, which still name the field.
  }
  return undefined;
}
