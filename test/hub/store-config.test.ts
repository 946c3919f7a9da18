// hub.yaml's `store` and `etcd` fields: validation with the field named, the files read for
// TLS and auth, and a hub started from them on a real etcd.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHub, defaultHubConfig, etcdStoreOptions, resolveHubConfig } from "@isthmus/hub";
import { type EtcdCluster, skipWithoutEtcd, startEtcd } from "../helpers/etcd.js";
import { hubConfig } from "../helpers/hub-fixture.js";

const etcdConfig = (etcd: object) => resolveHubConfig({ store: "etcd", etcd }, "hub.yaml");

describe("hub config: store and etcd", () => {
  it("keeps the file store by default", () => {
    assert.equal(defaultHubConfig.store, "file");
    assert.deepEqual(resolveHubConfig({}, "hub.yaml").etcd, {
      endpoints: [],
      prefix: "/isthmus/",
      requestTimeoutMs: 5000,
      maxTxnOps: 128,
    });
  });

  it("accepts endpoints as a list or one comma-separated string, and the TLS and auth files", () => {
    const config = etcdConfig({
      endpoints: "https://etcd-0:2379, https://etcd-1:2379",
      prefix: "/prod/",
      requestTimeoutMs: 2000,
      caFile: "/etc/etcd/ca.crt",
      certFile: "/etc/etcd/tls.crt",
      keyFile: "/etc/etcd/tls.key",
      username: "isthmus",
      passwordFile: "/etc/etcd/password",
    });
    assert.equal(config.store, "etcd");
    assert.deepEqual(config.etcd.endpoints, ["https://etcd-0:2379", "https://etcd-1:2379"]);
    assert.equal(config.etcd.prefix, "/prod/");
    assert.deepEqual(etcdConfig({ endpoints: ["http://127.0.0.1:2379"] }).etcd.endpoints, [
      "http://127.0.0.1:2379",
    ]);
  });

  for (const [input, message] of [
    [{ store: "consul" }, /^hub\.yaml: store: must be file or etcd, got "consul"$/],
    [{ store: "etcd" }, /^hub\.yaml: etcd\.endpoints: needed with store: etcd/],
    [
      { etcd: { endpoints: ["etcd:2379"] } },
      /^hub\.yaml: etcd\.endpoints\[0\]: .*http\(s\):\/\/host:port/,
    ],
    [
      { etcd: { endpoints: ["http://etcd"] } },
      /^hub\.yaml: etcd\.endpoints\[0\]: expected http\(s\):\/\/host:port/,
    ],
    [
      { etcd: { endpoints: ["http://a:2379", "https://b:2379"] } },
      /^hub\.yaml: etcd\.endpoints: mixes http:\/\/ and https:\/\//,
    ],
    [{ etcd: { prefix: "isthmus" } }, /^hub\.yaml: etcd\.prefix: must end with "\/"/],
    [
      { etcd: { requestTimeoutMs: 5 } },
      /^hub\.yaml: etcd\.requestTimeoutMs: must be an integer >= 100/,
    ],
    [{ etcd: { certFile: "c" } }, /^hub\.yaml: etcd\.certFile, etcd\.keyFile: give both/],
    [
      { etcd: { certFile: "c", keyFile: "k" } },
      /^hub\.yaml: etcd\.caFile: needed with etcd\.certFile/,
    ],
    [
      { etcd: { endpoints: ["http://a:2379"], caFile: "ca" } },
      /^hub\.yaml: etcd\.endpoints: TLS files are set but the endpoints are http:\/\//,
    ],
    [
      { etcd: { username: "u" } },
      /^hub\.yaml: etcd\.username: give it together with etcd\.passwordFile/,
    ],
    [{ etcd: { tls: {} } }, /^hub\.yaml: etcd\.tls: unknown field/],
  ] as const) {
    it(`refuses ${JSON.stringify(input)}`, () => {
      assert.throws(
        () => resolveHubConfig(input, "hub.yaml"),
        (err: Error) => message.test(err.message) || assert.fail(err.message),
      );
    });
  }

  it("reads the TLS and password files, naming the field of one it cannot read", async () => {
    const dir = await mkdtemp(join(tmpdir(), "isthmus-etcd-config-"));
    try {
      await writeFile(join(dir, "ca.crt"), "CA PEM");
      await writeFile(join(dir, "password"), "s3cret\n");
      const config = etcdConfig({
        endpoints: ["https://etcd:2379"],
        caFile: join(dir, "ca.crt"),
        username: "isthmus",
        passwordFile: join(dir, "password"),
      });
      const options = await etcdStoreOptions(config.etcd);
      assert.deepEqual(options.tls, { caPem: "CA PEM" });
      assert.deepEqual(options.auth, { username: "isthmus", password: "s3cret" });
      await assert.rejects(
        etcdStoreOptions({ ...config.etcd, caFile: join(dir, "missing.crt") }),
        /^ConfigError: etcd\.caFile: cannot read .*missing\.crt: ENOENT/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("hub with store: etcd", function () {
  this.timeout(60_000);
  let etcd: EtcdCluster | undefined;
  before(async function () {
    skipWithoutEtcd(this);
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.close();
  });

  it("keeps its state in etcd: a hub on another data dir finds it", async () => {
    const config = (dataDir: string) => ({
      ...hubConfig(dataDir),
      store: "etcd" as const,
      etcd: {
        endpoints: etcd!.endpoints,
        prefix: "/config-test/",
        requestTimeoutMs: 5000,
        maxTxnOps: 128,
      },
    });
    const dirs = [
      await mkdtemp(join(tmpdir(), "isthmus-hub-1-")),
      await mkdtemp(join(tmpdir(), "isthmus-hub-2-")),
    ];
    try {
      const first = await createHub({ config: config(dirs[0]!) });
      await first.context.registry.putCluster(
        { cluster: { id: "a" } as never, tokenHash: "", tokenExpiresAt: 0, certSerials: [] },
        0,
      );
      await first.close();
      const second = await createHub({ config: config(dirs[1]!) });
      assert.deepEqual([...second.context.registry.clusters.keys()], ["a"]);
      assert.equal(second.caPem, first.caPem);
      await second.close();
    } finally {
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    }
  });

  it("does not start when etcd does not answer, naming etcd and the endpoint", async () => {
    const dir = await mkdtemp(join(tmpdir(), "isthmus-hub-down-"));
    const member = etcd!.members[0]!;
    member.pause();
    try {
      await assert.rejects(
        createHub({
          config: {
            ...hubConfig(dir),
            store: "etcd",
            etcd: {
              endpoints: etcd!.endpoints,
              prefix: "/down/",
              requestTimeoutMs: 300,
              maxTxnOps: 128,
            },
          },
        }),
        new RegExp(
          `^StoreError: etcd ${member.endpoint} \\(prefix /down/\\): .*did not answer within 300 ms`,
        ),
      );
    } finally {
      member.resume();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
