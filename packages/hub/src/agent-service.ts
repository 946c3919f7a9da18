// AgentService: enrollment and renewal of agents' certificates; the Connect stream is
// agent-session.ts.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { errorField, type Logger } from "@isthmus/logging";
import type { IssuedCertificate } from "@isthmus/pki";
import { type AgentService, Code, GrpcError, type ServiceHandlers } from "@isthmus/proto";
import { createConnectHandler } from "./agent-session.js";
import type { EnrollContext, SessionContext } from "./context.js";
import { type ClusterRecord, tokenMatches } from "./registry.js";
import { isStoreError } from "./store.js";

type Sign = (clusterId: string, csrPem: string) => Promise<IssuedCertificate>;

export function createAgentHandlers(
  ctx: EnrollContext & SessionContext,
  hooks: { snapshotReceived(): void },
  sign: Sign,
): ServiceHandlers<(typeof AgentService)["method"]> {
  const log = ctx.logger.child({ module: "agents" });

  /**
   * Signs the CSR and records the serial (the previous certificate stays valid until the new
   * one is in use) in one store write, a compare-and-swap on the version of `checked`, the
   * record the caller checked: an enrollment spends the token in that same write, so of
   * concurrent enrollments with one token exactly one wins.
   */
  const issue = async (checked: ClusterRecord, csrPem: string, spendToken: boolean) => {
    const clusterId = checked.cluster.id;
    let issued: IssuedCertificate;
    try {
      issued = await sign(clusterId, csrPem);
    } catch (err) {
      throw new GrpcError(Code.INVALID_ARGUMENT, `cannot sign csr: ${errorField(err)}`);
    }
    try {
      await ctx.registry.putCluster(
        {
          ...checked,
          certSerials: [issued.serialNumber.toLowerCase(), ...checked.certSerials].slice(0, 2),
          tokenHash: spendToken ? "" : checked.tokenHash,
          tokenExpiresAt: spendToken ? 0 : checked.tokenExpiresAt,
          // Enrolling again (after an admin rotated the token) records the trust domain anew.
          trustDomain: spendToken ? "" : (checked.trustDomain ?? ""),
        },
        checked.version,
      );
    } catch (err) {
      throw issueRefused(clusterId, spendToken, err, log);
    }
    log.info(spendToken ? "cluster enrolled" : "certificate renewed", {
      cluster: clusterId,
      serial: issued.serialNumber,
    });
    return {
      certificateChainPem: issued.certPem,
      caPem: ctx.hubCa.certPem,
      notAfter: timestampFromMs(issued.notAfter.getTime()),
    };
  };

  return {
    async enroll(req) {
      const record = ctx.registry.clusters.get(req.clusterId);
      // One message for every refusal, so that a caller cannot probe which clusters exist.
      const refused = new GrpcError(
        Code.PERMISSION_DENIED,
        `enrollment of cluster "${req.clusterId}" refused: unknown, used or expired bootstrap token`,
      );
      if (record === undefined || !tokenMatches(req.bootstrapToken, record.tokenHash))
        throw refused;
      if (ctx.now() > record.tokenExpiresAt) throw refused;
      return issue(record, req.csrPem, true);
    },

    async renew(req, call) {
      const clusterId = ctx.verifyAgent(call);
      const record = ctx.registry.clusters.get(clusterId);
      if (record === undefined)
        throw new GrpcError(Code.NOT_FOUND, `cluster "${clusterId}" is not registered`);
      return issue(record, req.csrPem, false);
    },

    connect: createConnectHandler(ctx, hooks),
  };
}

/**
 * The answer to a failed write of an issued certificate. A version conflict means another
 * call changed the record since it was checked: for an enrollment, the token was spent (or
 * rotated, or the cluster deleted) meanwhile. Store details stay in the log, not the answer.
 */
function issueRefused(clusterId: string, enrolling: boolean, err: unknown, log: Logger): GrpcError {
  const lost = isStoreError(err) && (err.code === "conflict" || err.code === "not-found");
  if (lost && enrolling)
    return new GrpcError(
      Code.PERMISSION_DENIED,
      `enrollment of cluster "${clusterId}" refused: token already used`,
    );
  if (lost)
    return new GrpcError(
      Code.ABORTED,
      `cluster "${clusterId}" changed during renewal (deleted or renewed at the same time); retry`,
    );
  if (isStoreError(err) && err.code === "unavailable") {
    log.warn("cannot record issued certificate: store unavailable", {
      cluster: clusterId,
      err: errorField(err),
    });
    return new GrpcError(
      Code.UNAVAILABLE,
      `cannot record the certificate of cluster "${clusterId}" now (store unavailable); retry`,
    );
  }
  log.error("cannot record issued certificate", { cluster: clusterId, err: errorField(err) });
  return new GrpcError(Code.INTERNAL, `cannot record the certificate of cluster "${clusterId}"`);
}
