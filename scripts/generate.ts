// Regenerates packages/proto/src/gen from proto/ with buf and protoc-gen-es.
//   npm run generate          lint the contract and regenerate (also the ConnectionPolicy
//                             JSON Schema and CRD, scripts/policy-schemas.ts)
//   npm run generate:check    the same, then fail if the committed code differs
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { policySchemaFiles } from "./policy-schemas.js";
import { printProto } from "./print-proto.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const genDir = "packages/proto/src/gen";

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
}

// buf resolves `import "buf/validate/validate.proto"` from this module (see buf.yaml).
const depFile = join(root, ".gen/protodeps/buf/validate/validate.proto");
mkdirSync(dirname(depFile), { recursive: true });
writeFileSync(depFile, printProto(file_buf_validate_validate.proto));

run("npx", ["buf", "lint"]);
run("npx", ["buf", "generate"]);
for (const f of policySchemaFiles()) writeFileSync(join(root, f.path), f.text);
const schemaPaths = policySchemaFiles().map((f) => f.path);

if (process.argv.includes("--check")) {
  const status = run("git", ["status", "--porcelain", "--", genDir, "proto", ...schemaPaths]);
  if (status.trim() !== "") {
    process.stderr.write(`generated code differs from a fresh generation:\n${status}\n`);
    process.stderr.write(run("git", ["diff", "--", genDir, ...schemaPaths]));
    process.stderr.write("run `npm run generate` and commit the result\n");
    process.exit(1);
  }
}
