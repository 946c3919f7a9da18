// The catalog as the agent sends it to the hub in one session: a full snapshot after
// Welcome, then the deltas taken from the cache, each with the next revision.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "@isthmus/logging";
import type { ClientBidiStream, ConnectRequestSchema, ConnectResponseSchema } from "@isthmus/proto";
import type { ClusterCache, TimedCatalogDelta } from "./discovery/cache.js";

type Stream = ClientBidiStream<typeof ConnectRequestSchema, typeof ConnectResponseSchema>;
export type Send = (m: Parameters<Stream["send"]>[0]) => Promise<void>;

export interface CatalogSender {
  /** Sends the whole catalog; `limit`: the hub's maximum of entries (0: none), to warn of. */
  snapshot(limit: number): Promise<void>;
  /** Sends the changes since the last snapshot or delta, if any. */
  flush(): void;
}

export function createCatalogSender(
  cache: Pick<ClusterCache, "fullSnapshot" | "takeDelta">,
  send: Send,
  logger: Logger,
  options: {
    onCatalogSent?: (update: { full: boolean; revision: bigint; entries: number }) => void;
  },
): CatalogSender {
  let revision = 0n;
  return {
    async snapshot(limit) {
      const { snapshot, originTime } = cache.fullSnapshot();
      revision++;
      const services = [...snapshot.services.values()];
      const identities = [...snapshot.identities.values()];
      if (limit > 0 && services.length + identities.length > limit) {
        logger.warn("catalog larger than the hub accepts", {
          entries: services.length + identities.length,
          max: limit,
        });
      }
      await send({
        message: {
          case: "catalogUpdate",
          value: {
            fullSnapshot: true,
            revision,
            upsertedServices: services,
            upsertedIdentities: identities,
            originTime: timestampFromDate(originTime),
          },
        },
      });
      options.onCatalogSent?.({
        full: true,
        revision,
        entries: services.length + identities.length,
      });
    },
    flush: () => {
      const change: TimedCatalogDelta | undefined = cache.takeDelta();
      if (change === undefined) return;
      const d = change.delta;
      revision++;
      const rev = revision;
      void send({
        message: {
          case: "catalogUpdate",
          value: {
            fullSnapshot: false,
            revision: rev,
            upsertedServices: d.upsertedServices,
            removedServices: d.removedServices,
            upsertedIdentities: d.upsertedIdentities,
            removedIdentities: d.removedIdentities,
            originTime: timestampFromDate(change.originTime),
          },
        },
      })
        .then(() =>
          options.onCatalogSent?.({
            full: false,
            revision: rev,
            entries:
              d.upsertedServices.length +
              d.removedServices.length +
              d.upsertedIdentities.length +
              d.removedIdentities.length,
          }),
        )
        .catch(() => {});
    },
  };
}
