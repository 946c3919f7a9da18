import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { status } from "@grpc/grpc-js";
import { GrpcError } from "./errors.js";

const validator = createValidator();

/**
 * Checks a message against the protovalidate rules of its schema. Throws an
 * INVALID_ARGUMENT GrpcError listing every violation as `field: problem`.
 */
export function validateMessage<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
): void {
  const result = validator.validate(schema, message);
  if (result.kind === "valid") return;
  if (result.kind === "error") {
    throw new GrpcError(
      status.INTERNAL,
      `cannot validate ${schema.typeName}: ${result.error.message}`,
      {
        cause: result.error,
      },
    );
  }
  const problems = result.violations.map((v) => v.toString()).join("; ");
  throw new GrpcError(status.INVALID_ARGUMENT, `invalid ${schema.typeName}: ${problems}`);
}
