import assert from "node:assert/strict";
import { CONFIG_MAPS, createKubeClient, kubeConfigFromString } from "@isthmus/agent";
import { type KubeSim, startKubeSim } from "@isthmus/kubesim";

type KubeConfig = ReturnType<typeof kubeConfigFromString>;
type User = NonNullable<ReturnType<KubeConfig["getCurrentUser"]>>;

/** Counts client-node's applyToHTTPSOptions calls (TLS files, agent, credentials). */
function countSetups(config: KubeConfig): { count: number } {
  const counter = { count: 0 };
  const original = config.applyToHTTPSOptions.bind(config);
  config.applyToHTTPSOptions = async (opts: Parameters<KubeConfig["applyToHTTPSOptions"]>[0]) => {
    counter.count++;
    return original(opts);
  };
  return counter;
}

describe("agent kube client", () => {
  let sim: KubeSim;
  beforeEach(async () => {
    sim = await startKubeSim({ name: "c1", token: "secret" });
  });
  afterEach(() => sim.close());

  it("asks client-node for TLS settings and static credentials once, not per request", async () => {
    const config = kubeConfigFromString(sim.kubeconfig());
    const setups = countSetups(config);
    const client = createKubeClient(config);
    try {
      await Promise.all([client.list(CONFIG_MAPS), client.list(CONFIG_MAPS)]);
      for (let i = 0; i < 3; i++) await client.get(CONFIG_MAPS, "missing", "default");
      assert.equal(setups.count, 1);
    } finally {
      client.close();
    }
  });

  it("asks an auth provider again once the reuse period has passed, and after a failure", async () => {
    const config = kubeConfigFromString(sim.kubeconfig());
    const user = config.getCurrentUser() as User & { authProvider?: unknown; token?: string };
    // The token comes from an auth provider, as in a pod (client-node's tokenFile provider).
    delete user.token;
    user.authProvider = { name: "test", config: {} };
    const tokens = ["secret", "wrong", "secret"];
    let asked = 0;
    let fail = false;
    config.addAuthenticator({
      isAuthProvider: (u: User) => u.authProvider?.name === "test",
      applyAuthentication: async (_u: User, opts: { headers?: Record<string, string> }) => {
        asked++;
        if (fail) throw new Error("exec plugin failed");
        opts.headers = { ...opts.headers, Authorization: `Bearer ${tokens.shift()}` };
      },
    });
    let now = 0;
    const client = createKubeClient(config, { now: () => now });
    try {
      await client.list(CONFIG_MAPS);
      await client.list(CONFIG_MAPS);
      assert.equal(asked, 1);
      now = 999;
      await client.list(CONFIG_MAPS);
      assert.equal(asked, 1);
      // Past the reuse period: the provider's new (here wrong) token is used.
      now = 1000;
      await assert.rejects(client.list(CONFIG_MAPS), { name: "KubeApiError", code: 401 });
      assert.equal(asked, 2);
      now = 2000;
      fail = true;
      await assert.rejects(client.list(CONFIG_MAPS), /exec plugin failed/);
      // A failed setup is not kept: the next call asks again.
      fail = false;
      await client.list(CONFIG_MAPS);
      assert.equal(asked, 4);
    } finally {
      client.close();
    }
  });
});
