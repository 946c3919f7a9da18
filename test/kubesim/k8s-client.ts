// The tests drive kubesim with the real @kubernetes/client-node. Version 2.x needs undici 8,
// which needs Node >= 22.19 and crashes at import on Node 20 (zlib.createZstdDecompress,
// markAsUncloneable); 1.4.0 (node-fetch based, same API) runs on Node 20. Once the repo runs
// on Node 22, import "@kubernetes/client-node" here instead.
export * from "client-node-v1";
