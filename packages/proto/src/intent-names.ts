/** The name of a cluster's one DefaultAccessIntent (proto/isthmus/v1/intents.proto): the
 * hub sends it under this name, the agent expands it and reports it back under it. */
export const DEFAULT_ACCESS_INTENT_NAME = "default-access";
