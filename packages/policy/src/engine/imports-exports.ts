// Imports and exports: per logical service (`namespace/name`), the clusters that import it
// (an ImportIntent header and one ImportBackendIntent per backing cluster they may reach)
// and the backers that export it (an ExportIntent naming the importing clusters). Derived
// from the destinations' allowed clusters after the batch rebuilt them.
import type { ServiceRecord } from "@isthmus/model";
import { type Intent, isEnforceableService } from "@isthmus/proto";
import { buildExport, buildImport, buildImportBackend } from "../intent-builder.js";
import { type Batch, type LogicalServiceChanges, setIntent } from "./batch.js";
import {
  type Destination,
  type EngineState,
  intentNamesOf,
  type LogicalServiceState,
  NO_DESTINATIONS,
  serviceIntentNames,
} from "./engine-state.js";

/** The backend intent of a destination, rebuilt only when its service or cluster changed. */
function backendIntent(state: EngineState, d: Destination): Intent {
  const facts = state.catalog.cluster(d.record.clusterId)!;
  const b = d.backend;
  if (b !== undefined && b.record === d.record && b.facts === facts) return b.intent;
  const intent = buildImportBackend(d.record, facts, b?.intent);
  d.backend = { record: d.record, facts, intent };
  return intent;
}

/** What of a logical service the batch recomputes (null: all of it). */
function changesOf(batch: Batch, key: string): LogicalServiceChanges | null {
  let changes = batch.logicalServices.get(key);
  if (changes === undefined) {
    changes = { importers: new Set(), backers: new Set() };
    batch.logicalServices.set(key, changes);
  }
  return changes;
}

/**
 * A service of a cluster changed, came or left: the header of its own cluster (its local
 * copy), and when it backs the logical service (`d`), the intents of its importers and its
 * export. Importers it gains or loses in the batch are added by markAllowedClusters.
 */
export function markService(
  batch: Batch,
  clusterId: string,
  key: string,
  d: Destination | undefined,
): void {
  const changes = changesOf(batch, key);
  if (changes === null) return;
  changes.importers.add(clusterId);
  if (d === undefined) return;
  changes.backers.add(d);
  for (const c of d.allowedClusters) changes.importers.add(c);
}

/** A destination's importing clusters changed from `before`: note what changed. */
export function markAllowedClusters(
  batch: Batch,
  d: Destination,
  before: ReadonlySet<string>,
): void {
  const changed: string[] = [];
  for (const c of before) if (!d.allowedClusters.has(c)) changed.push(c);
  for (const c of d.allowedClusters) if (!before.has(c)) changed.push(c);
  if (changed.length === 0) return;
  const changes = changesOf(batch, d.record.logicalKey);
  if (changes === null) return;
  changes.backers.add(d);
  for (const c of changed) changes.importers.add(c);
}

/** The importing cluster's own copy of a logical service, when it can serve locally. */
function localBackend(
  state: EngineState,
  ns: string,
  name: string,
  c: string,
): ServiceRecord | undefined {
  const record = state.catalog.logicalService(ns, name).get(c);
  return record !== undefined && isEnforceableService(record.service) ? record : undefined;
}

/**
 * Headers of one recompute: importers with the same backends (and no local copy) get the
 * same one.
 */
function headerBuilder(ns: string, name: string, backing: ReadonlySet<Destination>) {
  const built = new Map<string, Intent>();
  const index = new Map<Destination, number>();
  // Lists are built in the order of `backing`: one as long as the enforceable backers is
  // all of them (most importers reach every backer).
  let every = 0;
  for (const d of backing) if (d.enforceable) every++;
  return (local: ServiceRecord | undefined, list: Destination[]): Intent => {
    let shape = local?.key ?? "";
    if (list.length === every) shape += "|*";
    else
      for (const d of list) {
        let i = index.get(d);
        if (i === undefined) {
          i = index.size;
          index.set(d, i);
        }
        shape += `|${i}`;
      }
    let header = built.get(shape);
    if (header === undefined) {
      header = buildImport(
        ns,
        name,
        local,
        list.map((d) => d.record),
      );
      built.set(shape, header);
    }
    return header;
  };
}

/** Backend intents `c` held among `backers` and no longer gets (`now`: the ones it gets). */
function dropBackends(
  state: EngineState,
  batch: Batch,
  c: string,
  backers: readonly string[],
  now: ReadonlySet<string> | undefined,
): void {
  const held = state.intentsByCluster.get(c);
  if (held === undefined) return;
  for (const b of backers) if (!now?.has(b) && held.has(b)) setIntent(state, batch, c, b, null);
}

/**
 * The export intent of a backer for the clusters importing it (none: removed). A backer
 * whose exported flag changes goes to `finalize`: its access intent depends on it.
 */
function exportTo(
  state: EngineState,
  batch: Batch,
  d: Destination,
  importedBy: string[] | undefined,
  exporters: Set<string>,
  finalize: Set<Destination>,
): void {
  const exported = importedBy !== undefined;
  const name = serviceIntentNames(state, d.record).export;
  if (exported) {
    setIntent(state, batch, d.record.clusterId, name, buildExport(d.record, importedBy));
    exporters.add(d.record.clusterId);
  } else if (exporters.delete(d.record.clusterId)) {
    setIntent(state, batch, d.record.clusterId, name, null);
  }
  if (d.exported !== exported) {
    d.exported = exported;
    finalize.add(d);
  }
}

/** Recomputes the imports and exports of one logical service the batch marked. */
export function recomputeLogical(
  state: EngineState,
  batch: Batch,
  key: string,
  changes: LogicalServiceChanges | null,
  finalize: Set<Destination>,
): void {
  const slash = key.indexOf("/");
  const place: LogicalPlace = { key, ns: key.slice(0, slash), name: key.slice(slash + 1) };
  const { ns, name } = place;
  const prevState = state.logicalServices.get(key);
  if (changes !== null && prevState !== undefined) {
    recomputeChangedImporters(state, batch, place, prevState, changes, finalize);
  } else {
    recomputeAll(state, batch, place, prevState, finalize);
  }
  if (state.catalog.logicalService(ns, name).size === 0) state.intentNames.delete(key);
}

/** A logical service's key and its parts. */
interface LogicalPlace {
  key: string;
  ns: string;
  name: string;
}

/** The enforceable backers each (known) cluster may reach, by cluster. */
function importersOf(state: EngineState, backing: ReadonlySet<Destination>) {
  const importers = new Map<string, Destination[]>();
  for (const d of backing) {
    if (!d.enforceable) continue;
    for (const c of d.allowedClusters) {
      if (state.catalog.cluster(c) === undefined) continue;
      let list = importers.get(c);
      if (list === undefined) {
        list = [];
        importers.set(c, list);
      }
      list.push(d);
    }
  }
  return importers;
}

/** Every importer and exporter of a logical service. */
function recomputeAll(
  state: EngineState,
  batch: Batch,
  { key, ns, name }: LogicalPlace,
  prevState: LogicalServiceState | undefined,
  finalize: Set<Destination>,
): void {
  const names = intentNamesOf(state, key, ns, name);
  const backing = state.destinationsByLogical.get(key) ?? NO_DESTINATIONS;
  const importers = importersOf(state, backing);
  if (importers.size === 0 && prevState === undefined) {
    for (const d of backing) {
      if (d.exported) {
        d.exported = false;
        finalize.add(d);
      }
    }
    return;
  }
  const prev = prevState ?? { importers: new Set<string>(), backers: [], exporters: new Set() };
  const next: LogicalServiceState = { importers: new Set(), backers: [], exporters: new Set() };
  const backers = new Set<string>();
  const importedBy = new Map<Destination, string[]>();
  const header = headerBuilder(ns, name, backing);
  importers.forEach((list, c) => {
    for (const d of list) {
      const backend = backendIntent(state, d);
      setIntent(state, batch, c, backend.name, backend);
      backers.add(backend.name);
      const by = importedBy.get(d);
      if (by === undefined) importedBy.set(d, [c]);
      else by.push(c);
    }
    setIntent(state, batch, c, names.import, header(localBackend(state, ns, name, c), list));
    next.importers.add(c);
  });
  next.backers = [...backers];
  // Backend intents an importer held and holds no more: among the previous backers.
  for (const c of prev.importers) {
    const list = importers.get(c);
    if (list === undefined) setIntent(state, batch, c, names.import, null);
    // Most importers reach every backer: their list is the union, no set to build.
    const now =
      list === undefined
        ? undefined
        : list.length === backers.size
          ? backers
          : new Set(list.map((d) => backendIntent(state, d).name));
    dropBackends(state, batch, c, prev.backers, now);
  }
  for (const d of backing) {
    exportTo(state, batch, d, importedBy.get(d), next.exporters, finalize);
  }
  for (const c of prev.exporters) {
    if (!next.exporters.has(c)) setIntent(state, batch, c, names.export, null);
  }
  if (next.importers.size === 0 && next.exporters.size === 0) state.logicalServices.delete(key);
  else state.logicalServices.set(key, next);
}

/**
 * Only the importers that came or went, and the exports of the backers whose importers
 * changed: a rule change that reaches many logical services changes few importers of each.
 */
function recomputeChangedImporters(
  state: EngineState,
  batch: Batch,
  { key, ns, name }: LogicalPlace,
  logical: LogicalServiceState,
  changes: LogicalServiceChanges,
  finalize: Set<Destination>,
): void {
  const names = intentNamesOf(state, key, ns, name);
  const backing = state.destinationsByLogical.get(key) ?? NO_DESTINATIONS;
  const backers = new Set(logical.backers);
  const header = headerBuilder(ns, name, backing);
  for (const c of changes.importers) {
    const list: Destination[] = [];
    if (state.catalog.cluster(c) !== undefined) {
      for (const d of backing) if (d.enforceable && d.allowedClusters.has(c)) list.push(d);
    }
    if (list.length === 0) {
      if (!logical.importers.delete(c)) continue;
      setIntent(state, batch, c, names.import, null);
      dropBackends(state, batch, c, logical.backers, undefined);
      continue;
    }
    const now = new Set<string>();
    for (const d of list) {
      const backend = backendIntent(state, d);
      setIntent(state, batch, c, backend.name, backend);
      now.add(backend.name);
      backers.add(backend.name);
    }
    // A new importer holds no backend intents of this service yet.
    if (logical.importers.has(c)) dropBackends(state, batch, c, logical.backers, now);
    else logical.importers.add(c);
    setIntent(state, batch, c, names.import, header(localBackend(state, ns, name, c), list));
  }
  logical.backers = [...backers];
  // Backers that left first: one that came back in the same batch is a new one.
  for (const d of changes.backers) {
    if (!d.live) exportTo(state, batch, d, undefined, logical.exporters, finalize);
  }
  for (const d of changes.backers) {
    if (!d.live) continue;
    const by: string[] = [];
    if (d.enforceable) {
      for (const c of d.allowedClusters) if (state.catalog.cluster(c) !== undefined) by.push(c);
    }
    exportTo(state, batch, d, by.length > 0 ? by : undefined, logical.exporters, finalize);
  }
  if (logical.importers.size === 0 && logical.exporters.size === 0) {
    state.logicalServices.delete(key);
  }
}
