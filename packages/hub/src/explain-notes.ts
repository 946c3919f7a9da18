// What explain adds about the importing side of a decision: an import lives in the service's
// namespace in the calling cluster (namespace sameness), so a cluster without that namespace
// refuses it; explain says so with the agent's own reason.

import { create } from "@bufbuild/protobuf";
import { importBackendName, importName } from "@isthmus/policy";
import { type ExplainRequest, type ExplainResponse, WarningSchema } from "@isthmus/proto";
import type { Distributor } from "./distributor.js";

/** The explain answer with a warning when the caller's cluster refused the import it needs. */
export function withImportNotes(
  ex: ExplainResponse,
  req: Pick<ExplainRequest, "source" | "destination">,
  distributor: Pick<Distributor, "view">,
): ExplainResponse {
  const src = req.source;
  const dst = req.destination;
  if (src === undefined || dst === undefined) return ex;
  const names = new Set([
    importName(dst.namespace, dst.service),
    ...ex.backends.map((b) => importBackendName(dst.namespace, dst.service, b.clusterId)),
  ]);
  const refused = distributor.view(src.clusterId).refused.find((e) => names.has(e.intentName));
  if (refused === undefined) return ex;
  ex.warnings.push(
    create(WarningSchema, {
      code: "import-refused",
      message:
        `cluster ${src.clusterId} refused ${refused.intentName} (${refused.object}): ${refused.message}; ` +
        `an import lives in the service's namespace "${dst.namespace}", which must exist in ${src.clusterId} ` +
        "(the agent applies it as soon as the namespace appears)",
    }),
  );
  return ex;
}
