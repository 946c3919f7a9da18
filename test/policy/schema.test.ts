// The ConnectionPolicy JSON Schema and CRD: committed as generated, structural as the API
// server requires, and in agreement with the document reader on what is valid.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connectionPolicyCrd, connectionPolicyJsonSchema, readPolicyText } from "@isthmus/policy";
import { Ajv } from "ajv";
import { parseAllDocuments } from "yaml";
import { policySchemaFiles } from "../../scripts/policy-schemas.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

type Schema = { [key: string]: unknown };

/** Every policy document of the examples folder and of the READMEs' yaml blocks. */
function examples(): [string, string][] {
  const out: [string, string][] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (/\.(ya?ml|json)$/.test(e.name) && dir.startsWith("examples/policies"))
        out.push([path, readFileSync(join(root, path), "utf8")]);
    }
  };
  walk("examples");
  for (const md of ["README.md", "packages/policy/README.md"]) {
    const text = readFileSync(join(root, md), "utf8");
    for (const [i, m] of [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].entries()) {
      if (/^kind: ConnectionPolicy$/m.test(m[1]!)) out.push([`${md} block ${i + 1}`, m[1]!]);
    }
  }
  return out;
}

/** The ConnectionPolicy objects of a text (List items expanded). */
function objects(text: string): unknown[] {
  return parseAllDocuments(text as string)
    .map((d) => (Array.isArray(d) ? null : d.toJS()))
    .filter((v) => v !== null && v !== undefined)
    .flatMap((v) => (v.kind === "List" ? v.items : [v]));
}

/**
 * Checks the rules of a structural schema that apply here (Kubernetes apiextensions v1):
 * a type on every node outside logical junctors, properties and additionalProperties not
 * together, nothing but value validations inside anyOf/allOf/oneOf/not, none of the JSON
 * Schema keywords the API server refuses. Returns the paths that break one.
 */
function structuralProblems(schema: Schema, path: string, inJunctor = false): string[] {
  const out: string[] = [];
  for (const k of ["$schema", "$id", "$ref", "propertyNames", "const", "definitions"]) {
    if (k in schema) out.push(`${path}: ${k} is not allowed`);
  }
  if (!inJunctor && typeof schema.type !== "string") out.push(`${path}: no type`);
  if (inJunctor) {
    for (const k of ["type", "description", "default", "additionalProperties", "nullable"]) {
      if (k in schema) out.push(`${path}: ${k} inside a junctor`);
    }
  }
  if ("properties" in schema && "additionalProperties" in schema)
    out.push(`${path}: properties and additionalProperties together`);
  if (schema.additionalProperties === false) out.push(`${path}: additionalProperties: false`);
  for (const [name, sub] of Object.entries((schema.properties ?? {}) as Record<string, Schema>))
    out.push(...structuralProblems(sub, `${path}.properties.${name}`, inJunctor));
  if (typeof schema.items === "object")
    out.push(...structuralProblems(schema.items as Schema, `${path}.items`, inJunctor));
  if (typeof schema.additionalProperties === "object")
    out.push(
      ...structuralProblems(
        schema.additionalProperties as Schema,
        `${path}.additionalProperties`,
        inJunctor,
      ),
    );
  for (const j of ["anyOf", "allOf", "oneOf"]) {
    for (const [i, sub] of ((schema[j] ?? []) as Schema[]).entries()) {
      out.push(...structuralProblems(sub, `${path}.${j}[${i}]`, true));
      // A junctor may only constrain properties the node itself specifies.
      for (const name of Object.keys((sub.properties ?? {}) as Schema)) {
        if (!(name in ((schema.properties ?? {}) as Schema)))
          out.push(`${path}.${j}[${i}]: property ${name} not specified outside`);
      }
    }
  }
  return out;
}

const crdSchema = () =>
  (connectionPolicyCrd() as { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } }).spec
    .versions[0]!.schema.openAPIV3Schema;

/** Documents on both sides of the line; the reader and the schema must agree on each. */
const header = (name: string) =>
  `apiVersion: isthmus.dev/v1alpha1\nkind: ConnectionPolicy\nmetadata: { name: ${name} }\nspec:\n`;
const CORPUS: string[] = [
  `${header("a")}  action: ALLOW\n  from: [{ namespaces: [web] }]\n  to: [{ namespaces: [db] }]\n`,
  `${header("a")}  action: allow\n  from: [{ namespaces: [web] }]\n  to: [{ namespaces: [db] }]\n`,
  `${header("a")}  action: ALLOW\n  from: [{}]\n  to: [{ namespaces: [db] }]\n`,
  `${header("a")}  action: ALLOW\n  from: [{ namespaces: [] }]\n  to: [{ namespaces: [db] }]\n`,
  `${header("a")}  action: ALLOW\n  from: [{ namespaces: [Web] }]\n  to: [{ namespaces: [db] }]\n`,
  `${header("a")}  action: ALLOW\n  from: [{ namespaces: ["w*"] }]\n  to: [{ ports: [0] }]\n`,
  `${header("a")}  action: ALLOW\n  from: [{ namespaces: [web] }]\n  to: [{ ports: [65535] }]\n`,
  `${header("a")}  action: ALLOW\n  from: [{ workloadLabels: { v: 2 } }]\n  to: [{ ports: [1] }]\n`,
  `${header("a")}  action: ALLOW\n  from: [{ workloadLabels: { "x/y/z": a } }]\n  to: [{ ports: [1] }]\n`,
  `${header("a")}  action: ALLOW\n  from: [{ clusterLabels: { "example.com/env": "" } }]\n  to: [{ ports: [1] }]\n`,
  `${header("a")}  action: ALLOW\n  form: []\n  from: [{ namespaces: [web] }]\n  to: [{ ports: [1] }]\n`,
  `${header("a")}  action: ALLOW\n  from: [{ namespaces: [web] }]\n`,
  `${header("a")}  priority: 1.5\n  action: ALLOW\n  from: [{ namespaces: [web] }]\n  to: [{ ports: [1] }]\n`,
  `${header("a")}  priority: 2147483648\n  action: ALLOW\n  from: [{ namespaces: [web] }]\n  to: [{ ports: [1] }]\n`,
  `${header("Upper")}  action: DENY\n  from: [{ namespaces: [web] }]\n  to: [{ ports: [1] }]\n`,
  `${header(`${"a".repeat(64)}`)}  action: DENY\n  from: [{ namespaces: ["${"b".repeat(64)}"] }]\n  to: [{ ports: [1] }]\n`,
  `${header("a")}  action: DENY\n  from: [{ serviceAccounts: ["${"b".repeat(200)}"] }]\n  to: [{ ports: [1] }]\n`,
  `${header("a")}  action: DENY\n  from: [{ serviceAccounts: ["${"b*".repeat(70)}"] }]\n  to: [{ ports: [1] }]\n`,
  "apiVersion: isthmus.dev/v1alpha1\nkind: ConnectionPolicy\nmetadata: { name: a, labels: { team: a } }\n" +
    "spec: { action: DENY, from: [{ namespaces: [web] }], to: [{ ports: [1] }] }\n",
  "apiVersion: isthmus.dev/v1alpha1\nkind: ConnectionPolicy\nmetadata: { name: a, uid: x }\n" +
    "spec: { action: DENY, from: [{ namespaces: [web] }], to: [{ ports: [1] }] }\n",
  "apiVersion: v1\nkind: ConnectionPolicy\nmetadata: { name: a }\nspec: {}\n",
  'apiVersion: isthmus.dev/v1alpha1\nkind: ConnectionPolicy\nmetadata: { name: a, annotations: { "bad key": x } }\n' +
    "spec: { action: DENY, from: [{ namespaces: [web] }], to: [{ ports: [1] }] }\n",
  "apiVersion: isthmus.dev/v1alpha1\nkind: ConnectionPolicy\nmetadata: { name: a, annotations: { example.com/owner: x } }\n" +
    "spec: { action: DENY, from: [{ namespaces: [web] }], to: [{ ports: [1] }] }\n",
  "apiVersion: isthmus.dev/v1alpha1\nkind: ConnectionPolicy\nmetadata: { name: 7 }\n" +
    "spec: { action: DENY, from: [{ namespaces: [web] }], to: [{ ports: [1] }] }\n",
];

describe("ConnectionPolicy schema", () => {
  it("the committed JSON Schema and CRD template are what the generator writes", () => {
    for (const f of policySchemaFiles()) {
      assert.equal(
        readFileSync(join(root, f.path), "utf8"),
        f.text,
        `${f.path} differs from the generator: run npm run generate and commit it`,
      );
    }
  });

  it("every example policy is valid for the schema, the CRD schema and the reader", () => {
    // strictTypes off: inside anyOf, minItems constrains the array the node types.
    const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
    const schema = ajv.compile(connectionPolicyJsonSchema());
    const crd = new Ajv({ strict: false }).compile(crdSchema());
    const found = examples();
    assert.ok(found.length >= 4, `examples found: ${found.map(([f]) => f).join(", ")}`);
    for (const [file, text] of found) {
      assert.deepEqual(readPolicyText(text, file).problems, [], file);
      for (const o of objects(text)) {
        assert.ok(schema(o), `${file}: ${ajv.errorsText(schema.errors)}`);
        assert.ok(crd(o), `${file}: CRD schema`);
      }
    }
  });

  it("the schema and the reader agree on what is valid", () => {
    const validate = new Ajv({ allErrors: true, strict: true, strictTypes: false }).compile(
      connectionPolicyJsonSchema(),
    );
    let valid = 0;
    for (const text of CORPUS) {
      const [object] = objects(text);
      const read = readPolicyText(text, "t.yaml");
      const bySchema = validate(object);
      assert.equal(
        bySchema,
        read.problems.length === 0,
        `${text}\n${JSON.stringify(read.problems)}`,
      );
      if (bySchema) valid++;
    }
    assert.ok(valid >= 4 && valid < CORPUS.length);
  });

  it("the CRD's openAPIV3Schema is structural", () => {
    assert.deepEqual(structuralProblems(crdSchema(), "openAPIV3Schema"), []);
    // The checker finds what it looks for.
    assert.deepEqual(
      structuralProblems(
        { type: "object", properties: { a: { additionalProperties: false, properties: {} } } },
        "x",
      ),
      [
        "x.properties.a: no type",
        "x.properties.a: properties and additionalProperties together",
        "x.properties.a: additionalProperties: false",
      ],
    );
    const crd = connectionPolicyCrd() as { metadata: { name: string }; spec: Schema };
    const names = crd.spec.names as { plural: string };
    assert.equal(crd.metadata.name, `${names.plural}.${crd.spec.group}`);
  });
});
