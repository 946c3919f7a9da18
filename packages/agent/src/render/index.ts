import { toJsonString } from "@bufbuild/protobuf";
import { type ImportBackend, type Intent, IntentSchema } from "@isthmus/proto";
import type { LocalFacts } from "../local-facts.js";
import { INTENT_SOURCE_ANNOTATION } from "../ownership.js";
import { renderAccess } from "./access.js";
import { renderExport } from "./export.js";
import { type IntentHeader, renderImport, renderImportBackend } from "./import.js";
import { isDns1123Label } from "./meta.js";
import type { RenderResult } from "./types.js";

export * from "./meta.js";
export { istioProtocol, renderPorts } from "./ports.js";
export * from "./types.js";

/**
 * Renders one intent into Istio objects; an ImportIntent with the backends of its
 * ImportBackendIntents. Pure: the same intent, backends and facts give the same objects, byte
 * for byte. Problems are returned per object, never thrown.
 */
export function renderIntent(
  intent: Intent,
  facts: LocalFacts,
  backends: readonly ImportBackend[] = [],
): RenderResult {
  const result: RenderResult = {
    intentName: intent.name,
    intentVersion: intent.version,
    objects: [],
    errors: [],
  };
  const fail = (message: string) => {
    result.errors.push({ intentName: intent.name, object: `Intent ${intent.name}`, message });
    return result;
  };
  const kind = intent.kind;
  if (kind.case === undefined) return fail(`intent "${intent.name}" has no kind`);
  if (kind.case === "defaultAccessIntent") {
    return fail(`intent "${intent.name}": a DefaultAccessIntent is expanded, not rendered`);
  }
  const { namespace, service } = kind.value;
  if (!isDns1123Label(namespace))
    return fail(`intent "${intent.name}": namespace "${namespace}" is not a DNS-1123 label`);
  if (!isDns1123Label(service))
    return fail(`intent "${intent.name}": service "${service}" is not a DNS-1123 label`);
  const header: IntentHeader = {
    name: intent.name,
    version: intent.version,
    primaryAnnotations: {},
  };
  switch (kind.case) {
    case "importIntent":
      header.primaryAnnotations[INTENT_SOURCE_ANNOTATION] = toJsonString(IntentSchema, intent);
      result.objects = renderImport(header, kind.value, backends, facts);
      break;
    case "importBackendIntent":
      if (kind.value.backend === undefined) return fail(`intent "${intent.name}" has no backend`);
      header.primaryAnnotations[INTENT_SOURCE_ANNOTATION] = toJsonString(IntentSchema, intent);
      result.objects = renderImportBackend(header, kind.value, facts);
      break;
    case "exportIntent":
      header.primaryAnnotations[INTENT_SOURCE_ANNOTATION] = toJsonString(IntentSchema, intent);
      result.objects = renderExport(header, kind.value, facts);
      break;
    case "accessIntent": {
      const r = renderAccess(header, kind.value, facts);
      result.objects = r.objects;
      result.errors = r.errors;
      break;
    }
  }
  return result;
}

/** The name of the ImportIntent an ImportBackendIntent belongs to; undefined for others. */
export function importOf(intent: Intent): string | undefined {
  if (intent.kind.case !== "importBackendIntent") return undefined;
  return `import/${intent.kind.value.namespace}/${intent.kind.value.service}`;
}

/** Whether an intent's objects depend on the local endpoints of its service (access
 * policies name the pods' ports, known from the EndpointSlices for named target ports). */
export function dependsOnLocalEndpoints(intent: Intent): boolean {
  return (
    (intent.kind.case === "importIntent" && intent.kind.value.localBackend) ||
    intent.kind.case === "exportIntent" ||
    intent.kind.case === "accessIntent"
  );
}
