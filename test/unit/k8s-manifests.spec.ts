import { readdirSync } from "node:fs";
import path from "node:path";
import { brokerOptions } from "../../moleculer.config";
import { ROOT, checkTopology, createK8sValidator, loadManifestDir, parseManifests, where, type ManifestDoc, type TopologyOptions } from "../helpers/k8s-manifests";

/**
 * Every manifest in k8s/ (examples included) against the Kubernetes API schemas, strictly, and the
 * topology they describe against the product: one Deployment per service file, probes on the
 * health endpoints, references that resolve, a gateway Service without affinity, HPA and PDB on
 * the gateways, and a grace period that covers the gateway's drain.
 */
const serviceFiles = readdirSync(path.join(ROOT, "services"))
  .filter(f => f.endsWith(".service.ts"))
  .map(f => f.replace(/\.service\.ts$/, ""));

const options: TopologyOptions = {
  serviceFiles,
  // Given Deployments ahead of their service files, which other branches add; the test fails once
  // a file exists, so the entry is removed with the merge.
  pendingServices: ["reconciliation", "audit"].filter(name => !serviceFiles.includes(name)),
  brokerStopMs: (brokerOptions().tracking as { shutdownTimeout: number }).shutdownTimeout,
  defaultShutdownMs: 30_000
};

const clone = (docs: ManifestDoc[]): ManifestDoc[] => docs.map(m => ({ ...m, doc: structuredClone(m.doc) }));
type Obj = Record<string, any>;
const find = (docs: ManifestDoc[], kind: string, name: string): Obj => {
  const found = docs.find(m => m.doc.kind === kind && (m.doc.metadata as Obj).name === name);
  if (!found) throw new Error(`${kind}/${name} not found`);
  return found.doc as Obj;
};

describe("Kubernetes manifests (k8s/)", () => {
  let validate: ReturnType<typeof createK8sValidator>;
  const manifests = loadManifestDir();

  beforeAll(() => {
    validate = createK8sValidator();
  });

  it("has the product's objects", () => {
    const kinds = manifests.map(m => `${String(m.doc.kind)}/${(m.doc.metadata as Obj).name}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        "ConfigMap/pf2-config",
        "Secret/pf2-secrets",
        "Secret/pf2-env",
        "Deployment/nats",
        "StatefulSet/redis",
        "StatefulSet/postgres",
        "Deployment/gateway",
        "Service/gateway",
        "HorizontalPodAutoscaler/gateway",
        "PodDisruptionBudget/gateway",
        ...serviceFiles.map(name => `Deployment/${name}`),
        "Deployment/reconciliation",
        "Deployment/audit"
      ])
    );
  });

  it.each(manifests.map(m => [where(m), m] as const))("%s is valid against the Kubernetes schema", (_name, m) => {
    expect(validate(m.doc)).toEqual([]);
  });

  it("holds together as one deployment of the product", () => {
    expect(checkTopology(manifests, options)).toEqual([]);
  });

  describe("rejects broken manifests", () => {
    it("reports each schema violation of a broken file", () => {
      const broken = loadManifestDir(path.join(ROOT, "test/fixtures/k8s-broken"));
      expect(broken).toHaveLength(3);
      const [deployment, service, ancient] = broken.map(m => validate(m.doc));
      expect(deployment).toEqual(
        expect.arrayContaining([
          "/spec/replicas must be number",
          "/spec/template/spec/containers/0 must have required property 'name'",
          "/spec/template/spec/containers/0 must NOT have additional properties 'livenesProbe'"
        ])
      );
      expect(service.join("\n")).toMatch(/\/spec\/ports\/0\/targetPort must be number,string/);
      expect(ancient).toEqual([expect.stringMatching(/^no schema for extensions\/v1beta1\/Deployment/)]);
    });

    it("refuses a misplaced field, a wrong type and an unknown kind in the real gateway", () => {
      const docs = clone(manifests);
      const gateway = find(docs, "Deployment", "gateway");
      gateway.spec.template.spec.containers[0].readinessProbe.httpGet.portt = 3000;
      gateway.spec.template.spec.terminationGracePeriodSeconds = "60";
      expect(validate(gateway)).toEqual(
        expect.arrayContaining([
          "/spec/template/spec/containers/0/readinessProbe/httpGet must NOT have additional properties 'portt'",
          "/spec/template/spec/terminationGracePeriodSeconds must be number"
        ])
      );
      expect(validate({ ...find(docs, "Service", "gateway"), apiVersion: "apps/v1" })).toEqual([expect.stringMatching(/^no schema for apps\/v1\/Service/)]);
      expect(validate({ apiVersion: "v1", kind: "ConfigMap", metadata: {} })).toEqual(["metadata.name is required"]);
    });

    it("refuses YAML with a duplicate key", () => {
      expect(() => parseManifests("apiVersion: v1\nkind: ConfigMap\nkind: Secret\n", "dup.yaml")).toThrow(/dup\.yaml#0/);
    });

    const mutations: [string, (docs: ManifestDoc[]) => void, RegExp][] = [
      ["a node without a readiness probe", d => delete find(d, "Deployment", "presence").spec.template.spec.containers[0].readinessProbe, /presence.*no readinessProbe/],
      ["a node without memory limits", d => delete find(d, "Deployment", "rooms").spec.template.spec.containers[0].resources.limits.memory, /rooms.*no resources\.limits\.memory/],
      ["probes on the wrong path", d => (find(d, "Deployment", "gateway").spec.template.spec.containers[0].livenessProbe.httpGet.path = "/health"), /livenessProbe must GET \/health\/live/],
      ["probes on a port the node does not serve", d => (find(d, "Deployment", "eventbus").spec.template.spec.containers[0].env.find((e: Obj) => e.name === "HEALTH_PORT").value = "3200"), /eventbus.*readinessProbe must probe HEALTH_PORT \(3200\)/],
      ["SERVICES naming no service file", d => (find(d, "Deployment", "rooms").spec.template.spec.containers[0].env.find((e: Obj) => e.name === "SERVICES").value = "room"), /no services\/room\.service\.ts/],
      ["two services in one Deployment", d => (find(d, "Deployment", "rooms").spec.template.spec.containers[0].env.find((e: Obj) => e.name === "SERVICES").value = "rooms,presence"), /SERVICES must name exactly one service/],
      ["a Secret key that does not exist", d => (find(d, "Deployment", "audit").spec.template.spec.containers[0].env.find((e: Obj) => e.name === "DATABASE_URL").valueFrom.secretKeyRef.key = "DB"), /missing Secret key pf2-secrets\/DB/],
      ["a Secret that does not exist", d => (find(d, "Deployment", "gateway").spec.template.spec.containers[0].env.find((e: Obj) => e.name === "JWT_SECRET").valueFrom.secretKeyRef.name = "jwt"), /missing Secret key jwt\/JWT_SECRET/],
      ["an optional Secret that is not documented", d => (find(d, "Deployment", "rooms").spec.template.spec.containers[0].envFrom[1].secretRef.name = "env"), /Secret env does not exist/],
      ["a ConfigMap that does not exist", d => (find(d, "Deployment", "presence").spec.template.spec.containers[0].envFrom[0].configMapRef.name = "config"), /ConfigMap config does not exist/],
      ["a ConfigMap without TRANSPORTER", d => delete find(d, "ConfigMap", "pf2-config").data.TRANSPORTER, /TRANSPORTER must come from the shared ConfigMap/],
      ["a sticky gateway Service", d => (find(d, "Service", "gateway").spec.sessionAffinity = "ClientIP"), /must not use sessionAffinity/],
      ["a Service selecting nothing", d => (find(d, "Service", "gateway").spec.selector["app.kubernetes.io/component"] = "gw"), /Service gateway\): selects no workload/],
      ["an HPA of another Deployment", d => (find(d, "HorizontalPodAutoscaler", "gateway").spec.scaleTargetRef.name = "presence"), /no HorizontalPodAutoscaler targets the gateway/],
      ["a PDB of other pods", d => (find(d, "PodDisruptionBudget", "gateway").spec.selector.matchLabels["app.kubernetes.io/component"] = "presence"), /no PodDisruptionBudget selects the gateway pods/],
      ["a PDB over every node", d => delete find(d, "PodDisruptionBudget", "gateway").spec.selector.matchLabels["app.kubernetes.io/component"], /also selects/],
      ["a grace period shorter than the drain", d => (find(d, "Deployment", "gateway").spec.template.spec.terminationGracePeriodSeconds = 30), /terminationGracePeriodSeconds 30 s < preStop 5 s \+ SHUTDOWN_TIMEOUT_MS 30 s/],
      ["a drain bound raised past the grace period", d => (find(d, "Deployment", "gateway").spec.template.spec.containers[0].env.find((e: Obj) => e.name === "SHUTDOWN_TIMEOUT_MS").value = "60000"), /terminationGracePeriodSeconds 60 s/],
      ["no preStop sleep", d => delete find(d, "Deployment", "gateway").spec.template.spec.containers[0].lifecycle, /preStop sleep/],
      ["two images", d => (find(d, "Deployment", "audit").spec.template.spec.containers[0].image = "pf2-realtime:other"), /same image/],
      ["a StatefulSet without its headless Service", d => delete find(d, "Service", "redis").spec.clusterIP, /redis.*headless Service/]
    ];
    it.each(mutations)("finds %s", (_what, mutate, expected) => {
      const docs = clone(manifests);
      mutate(docs);
      expect(checkTopology(docs, options).join("\n")).toMatch(expected);
    });

    it("finds a service file without a Deployment, and a pending service that has arrived", () => {
      expect(checkTopology(manifests, { ...options, serviceFiles: [...serviceFiles, "billing"] })).toContain("services/billing.service.ts has no Deployment in k8s/");
      const arrived = checkTopology(manifests, { ...options, serviceFiles: [...serviceFiles, "audit"], pendingServices: ["audit"] });
      expect(arrived.join("\n")).toMatch(/services\/audit\.service\.ts exists now/);
      const withoutAudit = serviceFiles.filter(name => name !== "audit");
      expect(checkTopology(manifests, { ...options, serviceFiles: withoutAudit, pendingServices: [] }).join("\n")).toMatch(/no services\/audit\.service\.ts/);
    });
  });
});
