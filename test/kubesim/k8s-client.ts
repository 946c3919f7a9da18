// The tests drive kubesim with the real @kubernetes/client-node (2.x, undici based).
export * from "@kubernetes/client-node";
