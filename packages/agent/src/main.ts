import { createLogger, errorField, type Logger } from "@isthmus/logging";
import { type Agent, type AgentConfig, createAgent } from "./agent.js";
import { parseAgentConfig } from "./config.js";

/**
 * The agent as a program (`isthmus agent …`): configuration from flags and environment,
 * start, and a clean stop on SIGINT/SIGTERM. Resolves with the exit code once stopped.
 */
export async function runAgent(
  argv: string[],
  options: { env?: NodeJS.ProcessEnv; logger?: Logger; signal?: AbortSignal } = {},
): Promise<number> {
  let config: AgentConfig | undefined;
  let invalid: unknown;
  try {
    config = parseAgentConfig(argv, options.env ?? process.env);
  } catch (err) {
    invalid = err;
  }
  // The format of every line, the first one included, from --log-format or its variable.
  const logger =
    options.logger ?? createLogger({ component: "agent", format: config?.logFormat ?? "json" });
  let agent: Agent;
  try {
    if (config === undefined) throw invalid;
    agent = createAgent({ ...config, logger });
  } catch (err) {
    logger.error("invalid agent configuration", { err: errorField(err) });
    return 2;
  }
  const stopped = new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    options.signal?.addEventListener("abort", stop, { once: true });
  });
  try {
    await Promise.race([agent.start(), stopped]);
  } catch (err) {
    logger.error("agent failed to start", { err });
    await agent.stop().catch(() => {});
    return 1;
  }
  await stopped;
  logger.info("stopping");
  await agent.stop();
  return 0;
}
