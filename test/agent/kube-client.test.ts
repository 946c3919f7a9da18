import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
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

  it("watches: every event line parsed, lines split across chunks, done once", async () => {
    const client = createKubeClient(kubeConfigFromString(sim.kubeconfig()));
    const events: string[] = [];
    const ended: unknown[] = [];
    try {
      const controller = await client.watch(
        "/api/v1/namespaces/default/configmaps",
        { resourceVersion: sim.resourceVersion(), allowWatchBookmarks: true },
        (type, obj) => events.push(`${type} ${obj.metadata.name}`),
        (err) => ended.push(err),
      );
      sim.create({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "a", namespace: "default" },
      });
      sim.patch("v1", "ConfigMap", "a", "default", { data: { k: "v" } });
      sim.delete("v1", "ConfigMap", "a", "default");
      for (let i = 0; i < 100 && events.length < 3; i++)
        await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(events, ["ADDED a", "MODIFIED a", "DELETED a"]);
      assert.deepEqual(ended, []);
      controller.abort();
      for (let i = 0; i < 100 && ended.length === 0; i++)
        await new Promise((r) => setTimeout(r, 10));
      assert.equal(ended.length, 1);
    } finally {
      client.close();
    }

    // A server that splits lines across chunks, sends a line that is not JSON, then ends.
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"type":"ADDED","object":{"metadata":{"name":"x"}}}\n{"type":"MOD');
      setTimeout(() => {
        res.write('IFIED","object":{"metadata":{"name":"x"}}}\nnot json\n{"type":"DELETED",');
        setTimeout(() => res.end('"object":{"metadata":{"name":"x"}}}\n'), 5);
      }, 5);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const plain = createKubeClient(
      kubeConfigFromString(
        `apiVersion: v1\nkind: Config\nclusters: [{name: p, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: p, context: {cluster: p, user: u}}]\ncurrent-context: p\n`,
      ),
    );
    try {
      const seen: string[] = [];
      const done = new Promise<unknown>((resolve) => {
        void plain.watch(
          "/api/v1/pods",
          {},
          (type, obj) => seen.push(`${type} ${obj.metadata.name}`),
          resolve,
        );
      });
      assert.equal(await done, null);
      assert.deepEqual(seen, ["ADDED x", "MODIFIED x", "DELETED x"]);
    } finally {
      plain.close();
      server.close();
    }
  });

  it("a watch refused by the server ends with its status code", async () => {
    const config = kubeConfigFromString(sim.kubeconfig());
    (config.getCurrentUser() as { token?: string }).token = "wrong";
    const client = createKubeClient(config);
    try {
      const err = await new Promise<unknown>((resolve) => {
        void client.watch("/api/v1/configmaps", {}, () => {}, resolve);
      });
      assert.equal((err as { statusCode?: number }).statusCode, 401);
    } finally {
      client.close();
    }
  });
});
