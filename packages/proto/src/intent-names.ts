/** The name of a cluster's one DefaultAccessIntent (proto/isthmus/v1/intents.proto): the
 * hub sends it under this name, the agent expands it and reports it back under it. */
export const DEFAULT_ACCESS_INTENT_NAME = "default-access";

/**
 * The name of one Service's AccessIntent, `access/<namespace>/<service>`. The hub names the
 * AccessIntents it sends so and the agent names those it expands from the DefaultAccessIntent
 * so: one Service's intent has one name whichever side made it. Built with `join`, one flat
 * string (a template literal makes a rope of 32 B per joint; the engine keeps one name per
 * service).
 */
export const accessIntentName = (namespace: string, service: string): string =>
  ["access", namespace, service].join("/");

/** The Service an AccessIntent name (see `accessIntentName`) is for; undefined for any other
 * name. Names come from the hub or from objects adopted after a restart: untrusted. */
export function serviceOfAccessIntentName(
  name: string,
): { namespace: string; service: string } | undefined {
  const parts = name.split("/");
  if (parts.length !== 3 || parts[0] !== "access") return undefined;
  const [, namespace = "", service = ""] = parts;
  if (namespace === "" || service === "") return undefined;
  return { namespace, service };
}
