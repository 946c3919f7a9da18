// The agent's client certificate from the hub: enrollment with the one-time bootstrap token,
// renewal before it expires (at start, and while connected), and the channel to the hub
// with whichever identity the agent has.
import { errorField, type Logger } from "@isthmus/logging";
import { createAgentCsr } from "@isthmus/pki";
import { AgentService, clientCredentials, createClient, type ServiceClient } from "@isthmus/proto";
import { type AgentIdentity, type IdentityStore, renewalDue } from "./identity.js";

export type Client = ServiceClient<(typeof AgentService)["method"]>;

export interface Enrollment {
  /** A client of the hub: with the hub CA only (enrollment) or the agent's identity. */
  channel(identity: AgentIdentity | undefined): Client;
  /** The identity to connect with: loaded, enrolled anew, or renewed when due. */
  credentials(): Promise<AgentIdentity>;
  /** Renews the certificate while connected; returns the function that stops it. */
  scheduleRenewal(identity: AgentIdentity): () => void;
}

/** The session's options that enrollment reads (SessionOptions documents them). */
export interface EnrollmentOptions {
  clusterId: string;
  hubAddress: string;
  hubCaPem: string;
  bootstrapToken?: string;
  serverNameOverride?: string;
  identityStore: IdentityStore;
  /** The address to dial now (the session picks among several and follows hints); default
   * hubAddress. */
  target?: () => string;
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: enrollment, renewal and the renewal timer share the options, the logger and the clock; none is over 80 lines
export function createEnrollment(
  options: EnrollmentOptions,
  logger: Logger,
  now: () => Date,
  /** Called when enrollment starts (the session's state). */
  enrolling: () => void,
): Enrollment {
  const channel = (identity: AgentIdentity | undefined): Client => {
    const tls =
      identity === undefined
        ? { caPem: options.hubCaPem }
        : { caPem: identity.caPem, certChainPem: identity.certChainPem, keyPem: identity.keyPem };
    return createClient(
      AgentService,
      options.target?.() ?? options.hubAddress,
      clientCredentials(tls),
      options.serverNameOverride === undefined
        ? {}
        : { serverNameOverride: options.serverNameOverride },
    );
  };

  async function enroll(): Promise<AgentIdentity> {
    if (options.bootstrapToken === undefined || options.bootstrapToken === "") {
      throw new Error(
        "no agent identity and no bootstrap token: create the cluster at the hub (isthmus cluster create) and pass its token",
      );
    }
    enrolling();
    const csr = await createAgentCsr(options.clusterId);
    const c = channel(undefined);
    try {
      const res = await c.enroll(
        {
          clusterId: options.clusterId,
          bootstrapToken: options.bootstrapToken,
          csrPem: csr.csrPem,
        },
        { timeoutMs: 30_000 },
      );
      const identity: AgentIdentity = {
        keyPem: csr.keyPem,
        certChainPem: res.certificateChainPem,
        caPem: res.caPem || options.hubCaPem,
        notAfter:
          res.notAfter === undefined
            ? new Date(now().getTime() + 3600_000)
            : new Date(Number(res.notAfter.seconds) * 1000),
        issuedAt: now(),
      };
      await options.identityStore.save(identity);
      logger.info("enrolled at the hub", { not_after: identity.notAfter.toISOString() });
      return identity;
    } finally {
      c.close();
    }
  }

  async function renew(identity: AgentIdentity): Promise<AgentIdentity> {
    const csr = await createAgentCsr(options.clusterId);
    const c = channel(identity);
    try {
      const res = await c.renew({ csrPem: csr.csrPem }, { timeoutMs: 30_000 });
      const next: AgentIdentity = {
        keyPem: csr.keyPem,
        certChainPem: res.certificateChainPem,
        caPem: res.caPem || identity.caPem,
        notAfter:
          res.notAfter === undefined
            ? identity.notAfter
            : new Date(Number(res.notAfter.seconds) * 1000),
        issuedAt: now(),
      };
      await options.identityStore.save(next);
      logger.info("renewed the client certificate", { not_after: next.notAfter.toISOString() });
      return next;
    } finally {
      c.close();
    }
  }

  async function credentials(): Promise<AgentIdentity> {
    let identity = await options.identityStore.load();
    if (identity === undefined) return enroll();
    if (identity.notAfter.getTime() <= now().getTime()) {
      logger.warn("client certificate expired", { not_after: identity.notAfter.toISOString() });
      return enroll();
    }
    if (renewalDue(identity).getTime() <= now().getTime()) identity = await renew(identity);
    return identity;
  }

  /** Renews the certificate while connected, when two thirds of its lifetime have passed. */
  function scheduleRenewal(identity: AgentIdentity): () => void {
    let timer: NodeJS.Timeout | undefined;
    let cancelled = false;
    const arm = (current: AgentIdentity) => {
      const due = renewalDue(current).getTime() - now().getTime();
      timer = setTimeout(
        () => {
          renew(current).then(
            (next) => {
              if (!cancelled) arm(next);
            },
            (err: unknown) => {
              logger.warn("renewal failed", { err: errorField(err) });
              if (!cancelled) arm(current);
            },
          );
        },
        Math.max(1_000, Math.min(due, 2 ** 31 - 1)),
      );
      timer.unref();
    };
    arm(identity);
    return () => {
      cancelled = true;
      if (timer !== undefined) clearTimeout(timer);
    };
  }

  return { channel, credentials, scheduleRenewal };
}
