// What the agent tells the hub beside its catalog, on one session's stream: the conflicts
// with foreign policies (docs/conflicts.md), the policy source's ConnectionPolicy objects
// (docs/policy-source.md) and, when the hub asks, the cluster's objects for `isthmus verify`.

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Logger } from "@isthmus/logging";
import type { ConnectRequestSchema } from "@isthmus/proto";
import type { Controller } from "./controller.js";
import type { PolicySource } from "./policy-source.js";

type Send = (m: MessageInitShape<typeof ConnectRequestSchema>) => Promise<void>;

/** Largest object and report the hub accepts in an ObjectsReport (the contract; the stream's
 * message limit is 32 MiB). */
const MAX_REPORTED_OBJECT = 262_144;
const MAX_REPORTED_TOTAL = 30 * 1024 * 1024;

export interface FindingsSender {
  /** After the catalog snapshot: the conflicts, and the policies of a policy source. */
  sendAll(): Promise<void>;
  conflictsChanged(): void;
  policiesChanged(): void;
  /** Lists the cluster for the hub's ObjectsRequest. */
  answerObjects(requestId: string): Promise<void>;
}

/** Control characters out (the contract refuses them: the error is printed on terminals). */
function printable(text: string): string {
  return [...text]
    .map((ch) => (ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f ? " " : ch))
    .join("")
    .slice(0, 4096);
}

export function createFindingsSender(
  controller: Pick<Controller, "conflicts" | "clusterObjects">,
  policySource: PolicySource | undefined,
  send: Send,
  logger: Logger,
): FindingsSender {
  const conflicts = () =>
    send({
      message: { case: "conflictReport", value: { conflicts: controller.conflicts.current() } },
    });
  const policies = () =>
    policySource === undefined
      ? Promise.resolve()
      : send({
          message: {
            case: "policySourceReport",
            value: { documentsJson: policySource.documents() },
          },
        });
  return {
    async sendAll() {
      await conflicts();
      await policies();
    },
    conflictsChanged: () => void conflicts().catch(() => {}),
    policiesChanged: () => void policies().catch(() => {}),
    async answerObjects(requestId) {
      let objectsJson: string[] = [];
      let error = "";
      try {
        objectsJson = (await controller.clusterObjects()).map((o) => JSON.stringify(o));
        const big = objectsJson.findIndex((j) => j.length > MAX_REPORTED_OBJECT);
        const total = objectsJson.reduce((n, j) => n + j.length, 0);
        if (big >= 0)
          error = `an object exceeds ${MAX_REPORTED_OBJECT} bytes of JSON: ${objectsJson[big]!.slice(0, 120)}`;
        else if (total > MAX_REPORTED_TOTAL)
          error = `the cluster's objects take ${total} bytes of JSON, more than ${MAX_REPORTED_TOTAL}`;
      } catch (err) {
        error = (err as Error).message;
      }
      if (error !== "") {
        objectsJson = [];
        error = printable(error);
        logger.warn("cannot report the cluster's objects", { err: error });
      }
      await send({ message: { case: "objectsReport", value: { requestId, objectsJson, error } } });
    },
  };
}
