// Asking an agent for its cluster's live objects (`isthmus verify` without kubeconfigs): the
// admin call waits for the agent's ObjectsReport on its stream. What the agent sends is
// untrusted: every entry must parse as one object of a kind the mesh model reads, with a
// Kubernetes name; otherwise the request fails naming the entry, and the refusal is counted.
import { randomUUID } from "node:crypto";
import { Code, GrpcError, type ObjectsReport } from "@isthmus/proto";

/** The kinds the mesh model reads (packages/mesh-model/README.md, "Input"). */
const KINDS = new Set([
  "Namespace",
  "Service",
  "Pod",
  "EndpointSlice",
  "Gateway",
  "AuthorizationPolicy",
  "PeerAuthentication",
  "ServiceEntry",
  "DestinationRule",
  "Sidecar",
  "ConfigMap",
  "Deployment",
]);
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export interface ClusterObjects {
  objectsJson: string[];
  listedAt: number;
}

interface Pending {
  clusterId: string;
  resolve(objects: ClusterObjects): void;
  reject(err: GrpcError): void;
}

export interface ObjectRequests {
  /** A session can be asked now; the returned function ends that. */
  attach(clusterId: string, ask: (requestId: string) => Promise<void>): () => void;
  /** Asks the cluster's agent and waits for its report (at most `timeoutMs`). */
  request(clusterId: string, timeoutMs: number): Promise<ClusterObjects>;
  /** An ObjectsReport arrived from a cluster; returns the problem when it was refused. */
  answered(clusterId: string, report: ObjectsReport): string | undefined;
}

/** The first problem of a report's objects, as `objects_json[i]: problem`. */
export function objectProblem(objectsJson: readonly string[]): string | undefined {
  for (let i = 0; i < objectsJson.length; i++) {
    const at = `objects_report.objects_json[${i}]`;
    let o: unknown;
    try {
      o = JSON.parse(objectsJson[i]!);
    } catch {
      return `${at}: not JSON`;
    }
    if (o === null || typeof o !== "object" || Array.isArray(o)) return `${at}: not an object`;
    const { kind, metadata } = o as {
      kind?: unknown;
      metadata?: { name?: unknown; namespace?: unknown };
    };
    if (typeof kind !== "string" || !KINDS.has(kind))
      return `${at}.kind: ${JSON.stringify(kind)?.slice(0, 64)} is not a kind the mesh model reads`;
    const name = metadata?.name;
    if (typeof name !== "string" || name.length > 253 || !NAME.test(name))
      return `${at}.metadata.name: ${JSON.stringify(name)?.slice(0, 64)} is not a Kubernetes name`;
    const ns = metadata?.namespace;
    if (ns !== undefined && (typeof ns !== "string" || ns.length > 63 || !NAMESPACE.test(ns)))
      return `${at}.metadata.namespace: ${JSON.stringify(ns)?.slice(0, 64)} is not a namespace name`;
  }
  return undefined;
}

export function createObjectRequests(now: () => number): ObjectRequests {
  const sessions = new Map<string, (requestId: string) => Promise<void>>();
  const pending = new Map<string, Pending>();
  return {
    attach(clusterId, ask) {
      sessions.set(clusterId, ask);
      return () => {
        if (sessions.get(clusterId) !== ask) return;
        sessions.delete(clusterId);
        for (const [id, p] of pending)
          if (p.clusterId === clusterId) {
            pending.delete(id);
            p.reject(
              new GrpcError(Code.UNAVAILABLE, `the agent of cluster "${clusterId}" disconnected`),
            );
          }
      };
    },
    request(clusterId, timeoutMs) {
      const ask = sessions.get(clusterId);
      if (ask === undefined)
        return Promise.reject(
          new GrpcError(Code.UNAVAILABLE, `the agent of cluster "${clusterId}" is not connected`),
        );
      const requestId = randomUUID();
      return new Promise<ClusterObjects>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(requestId);
          reject(
            new GrpcError(
              Code.DEADLINE_EXCEEDED,
              `the agent of cluster "${clusterId}" did not report its objects within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
        timer.unref();
        const done =
          <T>(f: (v: T) => void) =>
          (v: T) => {
            clearTimeout(timer);
            f(v);
          };
        pending.set(requestId, { clusterId, resolve: done(resolve), reject: done(reject) });
        ask(requestId).catch((err: unknown) => {
          pending.delete(requestId);
          clearTimeout(timer);
          reject(GrpcError.from(err));
        });
      });
    },
    answered(clusterId, report) {
      const p = pending.get(report.requestId);
      // Only the cluster asked may answer; an unknown or late answer is dropped.
      if (p === undefined || p.clusterId !== clusterId) return undefined;
      pending.delete(report.requestId);
      if (report.error !== "") {
        p.reject(new GrpcError(Code.UNAVAILABLE, `cluster "${clusterId}": ${report.error}`));
        return undefined;
      }
      const problem = objectProblem(report.objectsJson);
      if (problem !== undefined) {
        p.reject(
          new GrpcError(
            Code.DATA_LOSS,
            `cluster "${clusterId}" reported objects the hub refuses: ${problem}`,
          ),
        );
        return problem;
      }
      p.resolve({ objectsJson: report.objectsJson, listedAt: now() });
      return undefined;
    },
  };
}
