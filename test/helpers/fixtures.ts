// Catalog entries and policies that several tests share: the payments service and the
// frontend that calls it, as agents report them and as policies name them. Tests spread them
// to vary a field (`{ ...paymentsService, name: "ledger" }`) and never change them in place:
// every test file of a run shares these objects.
import { Action, Visibility } from "@isthmus/proto";

/** payments/payments-api as an agent reports it: in the mesh, two ready endpoints. */
export const paymentsService = {
  namespace: "payments",
  name: "payments-api",
  ports: [{ name: "https", port: 8443, protocol: "TCP" }],
  selector: { app: "payments" },
  visibility: Visibility.PRIVATE,
  readyEndpoints: 2,
  serviceAccounts: ["payments"],
  inMesh: true,
};

/** The identity behind paymentsService: service account payments, two pods. */
export const paymentsIdentity = {
  namespace: "payments",
  serviceAccount: "payments",
  labelSets: [{ labels: { app: "payments" }, podCount: 2 }],
  podCount: 2,
};

/** The caller: web/frontend, one pod. */
export const frontendIdentity = {
  namespace: "web",
  serviceAccount: "frontend",
  labelSets: [{ labels: { app: "frontend" }, podCount: 1 }],
  podCount: 1,
};

/** The policy "frontend-to-payments": the web namespace of `cluster` may call payments-api. */
export const frontendToPayments = (cluster: string) => ({
  name: "frontend-to-payments",
  priority: 100,
  action: Action.ALLOW,
  from: [{ clusters: [cluster], namespaces: ["web"] }],
  to: [{ namespaces: ["payments"], services: ["payments-api"] }],
});

/** The policy "no-dev-to-prod": nothing in a cluster labelled env=dev may call env=prod. */
export const noDevToProd = {
  name: "no-dev-to-prod",
  priority: 10,
  action: Action.DENY,
  from: [{ clusterLabels: { env: "dev" } }],
  to: [{ clusterLabels: { env: "prod" } }],
};

/** The two policies of a sandbox of `defaultScene` (prod-eu, prod-us, dev) that CLI tests
 * check against: prod-eu's frontend may call payments, dev may call nothing in prod. */
export const sandboxPolicies = [frontendToPayments("prod-eu"), noDevToProd];
