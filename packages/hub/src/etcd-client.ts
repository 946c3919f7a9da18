// The etcd client of the hub's store, and the options both take: TLS, user/password auth,
// and connection settings that keep requests bounded and reconnects quick.
import type { Logger } from "@isthmus/logging";
import { Etcd3 } from "etcd3";

export interface EtcdStoreOptions {
  /** Client URLs, `http://host:2379` or `https://host:2379` (all of one scheme). */
  endpoints: string[];
  /** Every key lives under it; default `/isthmus/`. */
  prefix?: string;
  /** TLS to etcd: PEM contents. A client certificate needs its key and the CA. */
  tls?: { caPem?: string; certPem?: string; keyPem?: string };
  /** etcd's own user/password authentication. */
  auth?: { username: string; password: string };
  /** Bound on one request, retries included; an unanswered request is a StoreError
   * "unavailable" then. Default 5000. */
  requestTimeoutMs?: number;
  /** Writes etcd takes in one transaction (its --max-txn-ops, default 128); a longer
   * transaction is refused with StoreError "too-large" before it is sent. */
  maxTxnOps?: number;
  /** Where the store says that a watch broke and resumed. */
  logger?: Logger;
}

export const DEFAULT_ETCD_PREFIX = "/isthmus/";

/** The etcd client for `options`: TLS, auth, and a fault policy that keeps requests bounded. */
export function createEtcdClient(options: EtcdStoreOptions): Etcd3 {
  const { tls, auth } = options;
  const timeout = options.requestTimeoutMs ?? 5000;
  return new Etcd3({
    hosts: options.endpoints,
    ...(tls?.caPem !== undefined || tls?.certPem !== undefined
      ? {
          credentials: {
            rootCertificate: Buffer.from(tls.caPem ?? ""),
            ...(tls.keyPem !== undefined ? { privateKey: Buffer.from(tls.keyPem) } : {}),
            ...(tls.certPem !== undefined ? { certChain: Buffer.from(tls.certPem) } : {}),
          },
        }
      : {}),
    ...(auth !== undefined
      ? {
          auth: {
            ...auth,
            callOptions: () => ({ deadline: Date.now() + timeout }),
          },
        }
      : {}),
    dialTimeout: timeout,
    grpcOptions: {
      // grpc-js shares connections (subchannels) between the clients of a process: a new
      // or reset client would inherit another's reconnect backoff to a member that just
      // restarted and fail at once. Own connections, and a short backoff, let a client
      // reach a member again within a couple of seconds of its return.
      "grpc.use_local_subchannel_pool": 1,
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 2000,
    },
    // etcd3's default fault handling stays: a request fails over to another member when one
    // is down, each member behind a circuit breaker. Every request of the store carries one
    // deadline for all its tries, which keeps the whole request bounded.
  });
}
