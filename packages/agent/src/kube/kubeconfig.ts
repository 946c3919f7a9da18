// Where the agent's kubeconfig comes from: text, or the usual places.
import { KubeConfig } from "@kubernetes/client-node";

/** A kubeconfig from YAML text (e.g. kubesim's `kubeconfig()`), for callers without client-node. */
export function kubeConfigFromString(text: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(text);
  return kc;
}

/** The kubeconfig in the usual places: KUBECONFIG, ~/.kube/config, or in-cluster. */
export function kubeConfigFromDefault(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path !== undefined) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}
