// Leader election among hub replicas on etcd, with etcd3's Election (campaign, resign,
// observe). The leader serves agent streams and pushes; followers keep a warm engine and point
// agents to the leader (docs/high-availability.md). Each term is the create revision of the
// leader's election key: etcd orders candidates by it, so terms only grow.
import { performance } from "node:perf_hooks";
import { errorField, type Logger, silentLogger } from "@isthmus/logging";
import { type Campaign, type Etcd3, EtcdLeaseInvalidError, type Lease } from "etcd3";
import { createLeaderProbe } from "./leader-probe.js";

/** What a candidate announces in its election key. */
export interface LeaderInfo {
  /** Replica id, unique per process. */
  id: string;
  /** Where agents reach this replica ("host:port"); empty when it advertises none. */
  address: string;
  /** Where the other replicas reach it, when not at `address` (leader-probe.ts). */
  peer?: string;
}

/** The address followers probe to find a crashed leader ("" for none). */
const peerOf = (info: LeaderInfo) => info.peer ?? info.address;

export interface LeadershipView {
  leading: boolean;
  /** The term this replica leads in; 0n when it does not lead. */
  term: bigint;
  /** The current leader as observed, this replica included; undefined while there is none. */
  leader: LeaderInfo | undefined;
  /** Why the last campaign failed (e.g. etcd unreachable), until one is elected again. */
  problem?: string;
}

export interface Leadership {
  readonly id: string;
  /** Where the election runs, for messages ("etcd http://…"); empty without election. */
  readonly where: string;
  /**
   * Whether this replica leads now: elected, and its lease known valid by the local
   * monotonic clock (the last keepalive acknowledged was sent less than the lease TTL ago).
   * Checked before every push, so that a replica paused past its lease (SIGSTOP, a long GC)
   * pushes nothing when it resumes, before etcd3 even reports the loss.
   */
  leading(): boolean;
  view(): LeadershipView;
  /** Resolves with the leader once one is known, or undefined after `ms`. */
  leaderWithin(ms: number): Promise<LeaderInfo | undefined>;
  /** Called on every change of the view; returns the unsubscribe function. */
  onChange(listener: (view: LeadershipView) => void): () => void;
  /** Steps down (another replica may take over at once) and campaigns again. */
  resign(reason: string): void;
  /** Resigns (the lease is revoked, so another replica takes over at once) and stops. */
  close(): Promise<void>;
}

export interface LeadershipOptions {
  client: Etcd3;
  /** Key prefix of the hub's state in etcd; the election lives under `<prefix>election/`. */
  prefix: string;
  /** Election name (one per hub deployment sharing the prefix). */
  name?: string;
  /** Lease TTL in seconds (etcd's minimum is 2): how long a crashed leader holds on. */
  ttlSeconds: number;
  self: LeaderInfo;
  /** The etcd, for messages: "etcd http://…". */
  where: string;
  logger?: Logger;
  /** Wait before campaigning again after a lost campaign (default 500 ms). */
  retryMs?: number;
}

/** A replica without election (file store): it always leads, in term 0. */
export function soleLeadership(self: LeaderInfo): Leadership {
  const view: LeadershipView = { leading: true, term: 0n, leader: self };
  return {
    id: self.id,
    where: "",
    leading: () => true,
    view: () => view,
    leaderWithin: async () => self,
    onChange: () => () => {},
    resign: () => {},
    close: async () => {},
  };
}

/** A campaign's lease: etcd3 keeps it private, and its keepalives and id are needed here. */
const leaseOf = (c: Campaign) => (c as unknown as { lease: Lease }).lease;

function parseInfo(value: string | undefined): LeaderInfo | undefined {
  if (value === undefined) return undefined;
  try {
    const v = JSON.parse(value) as Partial<LeaderInfo>;
    if (typeof v.id === "string" && typeof v.address === "string")
      return {
        id: v.id,
        address: v.address,
        ...(typeof v.peer === "string" ? { peer: v.peer } : {}),
      };
  } catch {
    // A foreign value under our election prefix: a leader we cannot point to.
  }
  return { id: value, address: "" };
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: its inner functions share one campaign's state (the election, the lease's last renewal, the observed leader); none is over 80 lines
export function startLeadership(options: LeadershipOptions): Leadership {
  const log = (options.logger ?? silentLogger).child({ module: "leadership" });
  const ttlMs = options.ttlSeconds * 1000;
  const retryMs = options.retryMs ?? 500;
  const root = options.client.namespace(options.prefix);
  const electionName = options.name ?? "hub-leader";
  const election = root.election(electionName, options.ttlSeconds);
  // etcd3's Election keeps its candidates' keys here (named by lease); read for the leader's.
  const candidates = root.namespace(`election/${electionName}/`);
  const probe = createLeaderProbe({
    logger: log,
    revoke: async (lease) => {
      try {
        await options.client.leaseClient.leaseRevoke({ ID: lease });
      } catch (err) {
        // Another follower revoked it first, or it expired: the same outcome.
        if (!(err instanceof EtcdLeaseInvalidError)) throw err;
      }
    },
    // Until the election names the next leader, name none: followers then hold calls for
    // it (replica-role.ts) instead of sending callers to the dead address.
    gone: (target) => {
      if (leader === undefined || peerOf(leader) !== target.address) return;
      leader = undefined;
      changed();
    },
  });
  const listeners = new Set<(view: LeadershipView) => void>();
  let closed = false;
  let campaign: Campaign | undefined;
  let elected = false;
  let term = 0n;
  let leader: LeaderInfo | undefined;
  /** Monotonic ms until which the lease is known valid. */
  let validUntil = 0;
  let deadline: NodeJS.Timeout | undefined;
  let observer: Awaited<ReturnType<typeof election.observe>> | undefined;
  let problem: string | undefined;

  const leading = () => !closed && elected && performance.now() < validUntil;
  const view = (): LeadershipView => ({
    leading: leading(),
    term: leading() ? term : 0n,
    leader,
    ...(problem === undefined ? {} : { problem }),
  });
  const changed = () => {
    const v = view();
    for (const l of listeners) l(v);
  };

  const armDeadline = () => {
    if (deadline !== undefined) clearTimeout(deadline);
    if (!elected) return;
    deadline = setTimeout(
      () => lose(campaign, "lease not renewed in time"),
      Math.max(0, validUntil - performance.now()),
    );
    deadline.unref();
  };

  /** Steps down from `c` (a no-op for an older campaign) and campaigns again. */
  const lose = (c: Campaign | undefined, reason: string) => {
    if (c !== campaign || c === undefined) return;
    const wasLeading = elected;
    campaign = undefined;
    elected = false;
    term = 0n;
    if (deadline !== undefined) clearTimeout(deadline);
    if (leader?.id === options.self.id) leader = undefined;
    problem = `${options.where}: ${reason}`;
    log.warn(wasLeading ? "leadership lost" : "campaign failed", { reason });
    c.resign().catch(() => {});
    if (wasLeading) changed();
    if (!closed) setTimeout(run, retryMs).unref();
  };

  const run = () => {
    if (closed || campaign !== undefined) return;
    const started = performance.now();
    validUntil = started + ttlMs;
    const c = election.campaign(JSON.stringify(options.self));
    campaign = c;
    // Every acknowledged keepalive extends the lease by the TTL from the moment it was sent;
    // keepalives are answered in order on their stream.
    const lease = leaseOf(c);
    const fired: number[] = [];
    lease.on("keepaliveFired", () => fired.push(performance.now()));
    lease.on("keepaliveSucceeded", () => {
      const sentAt = fired.shift();
      if (sentAt === undefined || c !== campaign) return;
      validUntil = sentAt + ttlMs;
      armDeadline();
    });
    lease.on("keepaliveFailed", () => {
      fired.length = 0;
    });
    c.on("error", (err) => lose(c, errorField(err)));
    c.on("elected", () => becomeLeader(c, started));
  };

  /** `c` leads: etcd3 said so, or a read found its key first (refresh). Once per campaign. */
  const becomeLeader = (c: Campaign, started: number) => {
    void (async () => {
      const key = await c.getCampaignKey();
      const res = await options.client.get(key).exec();
      const kv = res.kvs[0];
      if (c !== campaign || elected) return;
      if (kv === undefined) throw new Error(`election key ${key} vanished: lease expired`);
      elected = true;
      term = BigInt(kv.create_revision);
      leader = options.self;
      problem = undefined;
      armDeadline();
      log.info("elected leader", { term: String(term), waitedMs: performance.now() - started });
      changed();
    })().catch((err: unknown) => lose(c, errorField(err)));
  };

  /**
   * Reads who leads (etcd3's observer may name the wrong candidate when several keys arrive
   * in one watch batch, so every change is confirmed here). Also run every TTL: etcd3's
   * observer and campaign wait on watches that can miss a deletion when etcd's stream breaks
   * (a paused etcd), and a candidate whose key is first would then never learn it leads
   * while the others name it: this read catches it up.
   */
  const refresh = () => {
    const c = campaign;
    candidates
      .getAll()
      .sort("Create", "Ascend")
      .limit(1)
      .exec()
      .then(async ({ kvs }) => {
        const first = kvs[0];
        const next = parseInfo(first?.value.toString());
        const other = next !== undefined && next.id !== options.self.id;
        probe.watch(other ? { address: peerOf(next), lease: first!.lease } : undefined);
        if (first !== undefined && !other && !elected && c !== undefined && c === campaign) {
          const ours = await leaseOf(c).grant();
          if (ours === first.lease) becomeLeader(c, performance.now());
        }
        if (next?.id === leader?.id && next?.address === leader?.address) return;
        if (elected && next?.id !== options.self.id) return; // our key still leads
        leader = next;
        changed();
      })
      .catch((err: unknown) =>
        log.warn("cannot read the election leader", { err: errorField(err) }),
      );
  };
  const polling = setInterval(refresh, ttlMs);
  polling.unref();

  /** Follows who leads: every change the observer sees is confirmed by `refresh`. */
  const observe = () => {
    if (closed) return;
    election
      .observe()
      .then((o) => {
        observer = o;
        refresh();
        o.on("change", refresh);
        o.on("error", (err) => {
          log.warn("election observer failed", { err: errorField(err) });
          observer = undefined;
          o.cancel().catch(() => {});
          setTimeout(observe, retryMs).unref();
        });
      })
      .catch((err: unknown) => {
        log.warn("cannot observe the election", { err: errorField(err) });
        setTimeout(observe, retryMs).unref();
      });
  };

  run();
  observe();

  return {
    id: options.self.id,
    where: options.where,
    leading,
    view,
    leaderWithin(ms) {
      if (leader !== undefined) return Promise.resolve(leader);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          off();
          resolve(leader);
        }, ms);
        const off = this.onChange((v) => {
          if (v.leader === undefined) return;
          clearTimeout(timer);
          off();
          resolve(v.leader);
        });
      });
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    resign: (reason) => lose(campaign, reason),
    async close() {
      if (closed) return;
      const c = campaign;
      const wasLeading = leading();
      closed = true;
      elected = false;
      campaign = undefined;
      if (deadline !== undefined) clearTimeout(deadline);
      if (wasLeading) changed();
      probe.close();
      clearInterval(polling);
      await observer?.cancel().catch(() => {});
      await c?.resign().catch((err: unknown) => {
        log.warn("cannot resign; the lease expires by itself", { err: errorField(err) });
      });
    },
  };
}
