// PKI benchmark: how long `isthmus certs` takes on an empty folder (RSA 4096 root + RSA 4096
// CA, generated in parallel), and the two ways Node generates an RSA 4096 key, measured
// interleaved in the same run. Also the steady-state costs the hub pays: validating a
// complete folder and signing one agent CSR. Target: fresh folder under 3 s median on 2 cores.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  createAgentCsr,
  createHubCa,
  ensureMeshCa,
  generateRsaKeyPair,
  generateRsaKeyPairWebCrypto,
  signAgentCsr,
  validateMeshCa,
} from "@isthmus/pki";
import type { BenchOptions, Figure } from "./harness.js";

const FOLDER = "fresh folder (RSA 4096 root + CA)";
const NATIVE = "RSA 4096 key, crypto.generateKeyPair";
const WEBCRYPTO = "RSA 4096 key, webcrypto generateKey";
const VALIDATE = "validate complete folder";
const SIGN_CSR = "sign agent CSR (P-256)";

async function timed(action: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await action();
  return performance.now() - started;
}

export default async function run({ smoke }: BenchOptions): Promise<Figure[]> {
  const folders = smoke ? 1 : 7;
  const keys = smoke ? 1 : 12;
  const small = smoke ? 3 : 50;
  const workspace = await mkdtemp(join(tmpdir(), "isthmus-bench-pki-"));
  try {
    const folderSamples: number[] = [];
    for (let i = 0; i < folders; i += 1) {
      folderSamples.push(await timed(() => ensureMeshCa(join(workspace, `folder-${i}`))));
    }

    // Interleaved so that both see the same machine load.
    const native: number[] = [];
    const webcrypto: number[] = [];
    for (let i = 0; i < keys; i += 1) {
      native.push(await timed(() => generateRsaKeyPair(4096)));
      webcrypto.push(await timed(() => generateRsaKeyPairWebCrypto(4096)));
    }

    const validate: number[] = [];
    for (let i = 0; i < small; i += 1) {
      validate.push(await timed(() => validateMeshCa(join(workspace, "folder-0"))));
    }

    const hubCa = await createHubCa();
    const csrs = await Promise.all(
      Array.from({ length: small }, (_, i) => createAgentCsr(`cluster-${i}`)),
    );
    const sign: number[] = [];
    for (const [i, csr] of csrs.entries()) {
      sign.push(await timed(() => signAgentCsr(hubCa, csr.csrPem, { clusterId: `cluster-${i}` })));
    }

    return [
      { name: FOLDER, unit: "ms", samples: folderSamples },
      { name: NATIVE, unit: "ms", samples: native },
      { name: WEBCRYPTO, unit: "ms", samples: webcrypto, reference: NATIVE },
      { name: VALIDATE, unit: "ms", samples: validate },
      { name: SIGN_CSR, unit: "ms", samples: sign },
    ];
  } finally {
    await rm(workspace, { recursive: true, force: true });
  }
}

function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await run({ smoke: process.argv.includes("--smoke") });
  const medians = new Map(figures.map((figure) => [figure.name, median(figure.samples)]));
  for (const figure of figures) {
    const value = medians.get(figure.name)!;
    const ratio =
      figure.reference === undefined
        ? ""
        : `  (x${(value / medians.get(figure.reference)!).toFixed(2)} of ${figure.reference})`;
    console.log(
      `${figure.name.padEnd(42)} median ${value.toFixed(1).padStart(8)} ${figure.unit}  n=${figure.samples.length}${ratio}`,
    );
  }
}
