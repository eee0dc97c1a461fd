import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import Ajv, { type ValidateFunction } from "ajv";
import { createGenerator } from "ts-json-schema-generator";
import { parseAllDocuments } from "yaml";
import type { Deployment, StatefulSet } from "kubernetes-types/apps/v1";
import type { HorizontalPodAutoscaler } from "kubernetes-types/autoscaling/v2";
import type { ConfigMap, Container, EnvVar, PodTemplateSpec, Probe, Secret, Service } from "kubernetes-types/core/v1";
import type { PodDisruptionBudget } from "kubernetes-types/policy/v1";
import type { LabelSelector } from "kubernetes-types/meta/v1";

export const ROOT = path.resolve(__dirname, "../..");
export const K8S_DIR = path.join(ROOT, "k8s");

/** One YAML document of a manifest file. */
export interface ManifestDoc {
  file: string;
  index: number;
  doc: Record<string, unknown>;
}

export function where(m: ManifestDoc): string {
  const meta = m.doc.metadata as { name?: string } | undefined;
  return `${m.file}#${m.index} (${String(m.doc.kind)} ${meta?.name ?? "?"})`;
}

/** Every document of a YAML text; YAML errors (duplicate keys included) throw. Empty documents are skipped. */
export function parseManifests(text: string, file: string): ManifestDoc[] {
  const docs: ManifestDoc[] = [];
  parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true }).forEach((d, index) => {
    if (d.errors.length > 0) throw new Error(`${file}#${index}: ${d.errors.map(e => e.message).join("; ")}`);
    const value = d.toJS() as unknown;
    if (value === null || value === undefined) return;
    if (typeof value !== "object" || Array.isArray(value)) throw new Error(`${file}#${index}: a manifest must be a mapping`);
    docs.push({ file, index, doc: value as Record<string, unknown> });
  });
  return docs;
}

/** Every `*.yaml`/`*.yml` under `dir` (sub-directories included), in apply order (file name). */
export function loadManifestDir(dir: string = K8S_DIR): ManifestDoc[] {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = path.join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (/\.ya?ml$/.test(name)) files.push(full);
    }
  };
  walk(dir);
  return files.flatMap(file => parseManifests(readFileSync(file, "utf8"), path.relative(ROOT, file)));
}

/**
 * Validates documents against the Kubernetes API schemas: the kinds of test/helpers/k8s-kinds.ts
 * (kubernetes-types, from the Kubernetes 1.30 OpenAPI spec) turned into JSON Schema, strict like
 * `kubectl --validate=strict` and kubeconform's `-strict`: unknown fields, missing required fields,
 * wrong types, and an apiVersion/kind pair that is not one of the known kinds are errors.
 */
export function createK8sValidator(): (doc: Record<string, unknown>) => string[] {
  const schema = createGenerator({
    path: path.join(__dirname, "k8s-kinds.ts"),
    type: "K8sKinds",
    additionalProperties: false,
    skipTypeCheck: true,
    expose: "all",
    topRef: true,
    jsDoc: "none"
  }).createSchema("K8sKinds");
  const definitions = schema.definitions as Record<string, { properties?: Record<string, { $ref?: string }> }>;
  const kinds = definitions.K8sKinds?.properties ?? {};
  const ajv = new Ajv({ allErrors: true, strict: false });
  ajv.addSchema(schema, "k8s");
  const validators = new Map<string, ValidateFunction>();
  for (const [key, ref] of Object.entries(kinds)) {
    if (!ref.$ref) throw new Error(`no schema reference for ${key}`);
    validators.set(key, ajv.compile({ $ref: `k8s${ref.$ref}` }));
  }
  if (validators.size === 0) throw new Error("no Kubernetes kinds were generated");

  return doc => {
    const key = `${String(doc.apiVersion)}/${String(doc.kind)}`;
    const problems: string[] = [];
    if (typeof doc.apiVersion !== "string" || typeof doc.kind !== "string") problems.push("apiVersion and kind are required");
    const meta = doc.metadata as { name?: unknown } | undefined;
    if (typeof meta?.name !== "string" || meta.name === "") problems.push("metadata.name is required");
    const validate = validators.get(key);
    if (!validate) return [...problems, `no schema for ${key} (known: ${[...validators.keys()].join(", ")})`];
    if (!validate(doc)) {
      for (const err of validate.errors ?? []) {
        const extra = err.keyword === "additionalProperties" ? ` '${(err.params as { additionalProperty: string }).additionalProperty}'` : "";
        problems.push(`${err.instancePath || "/"} ${err.message ?? err.keyword}${extra}`);
      }
    }
    return problems;
  };
}

// ---------------------------------------------------------------------------------------------
// Checks of our own: what the schemas cannot know about this product's topology.

export interface TopologyOptions {
  /** Names of services/*.service.ts. */
  serviceFiles: string[];
  /** Services given a Deployment before their file exists (being added in parallel). */
  pendingServices: string[];
  /** Moleculer's `tracking.shutdownTimeout` (ms): how long a stopping broker waits for in-flight requests. */
  brokerStopMs: number;
  /** SHUTDOWN_TIMEOUT_MS when the gateway Deployment does not set it. */
  defaultShutdownMs: number;
}

const APP = "pf2-realtime";

type Workload = Deployment | StatefulSet;

function envOf(container: Container, name: string): EnvVar | undefined {
  return (container.env ?? []).find(e => e.name === name);
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

function selectsLabelSelector(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  if (selector?.matchExpressions?.length) return false; // not used here; keep the check honest
  return selects(selector?.matchLabels, labels);
}

function probePort(probe: Probe | undefined, container: Container): number | undefined {
  const port = probe?.httpGet?.port;
  if (typeof port === "number") return port;
  return container.ports?.find(p => p.name === port)?.containerPort;
}

function preStopSleepSeconds(container: Container): number {
  const handler = container.lifecycle?.preStop;
  if (handler?.sleep) return handler.sleep.seconds;
  const command = handler?.exec?.command ?? [];
  return command[0] === "sleep" && command.length === 2 ? Number(command[1]) : 0;
}

/** Problems with the topology the manifests describe; empty when it holds together. */
export function checkTopology(manifests: ManifestDoc[], options: TopologyOptions): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const m of manifests) {
    const key = `${String(m.doc.kind)}/${(m.doc.metadata as { name?: string } | undefined)?.name}`;
    if (seen.has(key)) problems.push(`${where(m)}: a second ${key}`);
    seen.add(key);
  }
  const ofKind = <T>(kind: string) => manifests.filter(m => m.doc.kind === kind).map(m => ({ m, obj: m.doc as T }));
  const configMaps = ofKind<ConfigMap>("ConfigMap");
  const secrets = ofKind<Secret>("Secret");
  const deployments = ofKind<Deployment>("Deployment");
  const statefulSets = ofKind<StatefulSet>("StatefulSet");
  const workloads: { m: ManifestDoc; obj: Workload }[] = [...deployments, ...statefulSets];
  const services = ofKind<Service>("Service");

  const configKeys = (name: string) => {
    const cm = configMaps.find(c => c.obj.metadata?.name === name);
    return cm ? new Set(Object.keys(cm.obj.data ?? {})) : undefined;
  };
  const secretKeys = (name: string) => {
    const s = secrets.find(c => c.obj.metadata?.name === name);
    return s ? new Set([...Object.keys(s.obj.data ?? {}), ...Object.keys(s.obj.stringData ?? {})]) : undefined;
  };

  for (const { m, obj } of workloads) {
    const template: PodTemplateSpec | undefined = obj.spec?.template;
    const podLabels = template?.metadata?.labels;
    if (!selectsLabelSelector(obj.spec?.selector, podLabels)) problems.push(`${where(m)}: spec.selector does not select its own pod template`);
    if (m.doc.kind === "StatefulSet") {
      const serviceName = (obj as StatefulSet).spec?.serviceName;
      const governing = services.find(s => s.obj.metadata?.name === serviceName);
      if (!governing || governing.obj.spec?.clusterIP !== "None") problems.push(`${where(m)}: serviceName must name a headless Service`);
    }
    for (const container of template?.spec?.containers ?? []) {
      const at = `${where(m)} container ${container.name}`;
      if (!container.livenessProbe) problems.push(`${at}: no livenessProbe`);
      if (!container.readinessProbe) problems.push(`${at}: no readinessProbe`);
      for (const side of ["requests", "limits"] as const) {
        for (const resource of ["cpu", "memory"]) {
          if (container.resources?.[side]?.[resource] === undefined) problems.push(`${at}: no resources.${side}.${resource}`);
        }
      }
      for (const source of container.envFrom ?? []) {
        if (source.configMapRef && !configKeys(source.configMapRef.name ?? "")) problems.push(`${at}: ConfigMap ${source.configMapRef.name} does not exist`);
        if (source.secretRef && !secretKeys(source.secretRef.name ?? "")) problems.push(`${at}: Secret ${source.secretRef.name} does not exist`);
      }
      for (const env of container.env ?? []) {
        const cmRef = env.valueFrom?.configMapKeyRef;
        if (cmRef && !configKeys(cmRef.name ?? "")?.has(cmRef.key)) problems.push(`${at}: env ${env.name} refers to missing ConfigMap key ${cmRef.name}/${cmRef.key}`);
        // An optional key may be absent (the variable is then left unset), its Secret may not.
        const secretRef = env.valueFrom?.secretKeyRef;
        const keys = secretRef ? secretKeys(secretRef.name ?? "") : undefined;
        if (secretRef && (!keys || (!secretRef.optional && !keys.has(secretRef.key)))) problems.push(`${at}: env ${env.name} refers to missing Secret key ${secretRef.name}/${secretRef.key}`);
      }
    }
  }

  // Nodes of the product: one Deployment per service, all from one image.
  const appDeployments = deployments.filter(d => d.obj.metadata?.labels?.["app.kubernetes.io/name"] === APP);
  const deployed = new Map<string, { m: ManifestDoc; obj: Deployment; container: Container }>();
  const images = new Set<string>();
  for (const { m, obj } of appDeployments) {
    const containers = obj.spec?.template?.spec?.containers ?? [];
    if (containers.length !== 1) {
      problems.push(`${where(m)}: a node's pod has exactly one container`);
      continue;
    }
    const container = containers[0];
    images.add(container.image ?? "");
    const services = envOf(container, "SERVICES")?.value;
    if (!services || services.includes(",")) {
      problems.push(`${where(m)}: SERVICES must name exactly one service, got ${JSON.stringify(services)}`);
      continue;
    }
    if (obj.metadata?.name !== services) problems.push(`${where(m)}: the Deployment of SERVICES=${services} should be named ${services}`);
    if (deployed.has(services)) problems.push(`${where(m)}: a second Deployment of ${services}`);
    deployed.set(services, { m, obj, container });
    if (!options.serviceFiles.includes(services) && !options.pendingServices.includes(services)) {
      problems.push(`${where(m)}: SERVICES=${services} but there is no services/${services}.service.ts`);
    }
    const configMap = (container.envFrom ?? []).map(s => s.configMapRef?.name).find(Boolean);
    const shared = configMap ? configKeys(configMap) : undefined;
    for (const key of ["TRANSPORTER", "NAMESPACE"]) {
      if (!shared?.has(key)) problems.push(`${where(m)}: ${key} must come from the shared ConfigMap (envFrom)`);
    }
    if (!envOf(container, "JWT_SECRET")?.valueFrom?.secretKeyRef) problems.push(`${where(m)}: JWT_SECRET must come from a Secret`);
    if (!envOf(container, "NODEID")?.valueFrom?.fieldRef) problems.push(`${where(m)}: NODEID should be the pod name (fieldRef), unique per node`);

    // Probes: the gateway serves them on WS_PORT, every other node on HEALTH_PORT.
    const portVar = services === "gateway" ? "WS_PORT" : "HEALTH_PORT";
    const port = Number(envOf(container, portVar)?.value);
    if (!Number.isInteger(port) || port <= 0) problems.push(`${where(m)}: ${portVar} must be set for the probes`);
    const expectations: [string, Probe | undefined, string][] = [
      ["livenessProbe", container.livenessProbe, "/health/live"],
      ["readinessProbe", container.readinessProbe, "/health/ready"]
    ];
    for (const [name, probe, probePath] of expectations) {
      if (probe?.httpGet?.path !== probePath) problems.push(`${where(m)}: ${name} must GET ${probePath}`);
      if (probePort(probe, container) !== port) problems.push(`${where(m)}: ${name} must probe ${portVar} (${port})`);
    }
  }
  if (images.size > 1) problems.push(`every node runs the same image, found ${[...images].join(", ")}`);
  for (const name of options.serviceFiles) {
    if (!deployed.has(name)) problems.push(`services/${name}.service.ts has no Deployment in k8s/`);
  }
  for (const name of options.pendingServices) {
    if (options.serviceFiles.includes(name)) problems.push(`services/${name}.service.ts exists now: remove "${name}" from the pending services of the k8s test`);
  }

  // Every Service selects pods of some workload, on ports those pods declare.
  for (const { m, obj } of services) {
    const target = workloads.find(w => selects(obj.spec?.selector, w.obj.spec?.template?.metadata?.labels));
    if (!target) {
      problems.push(`${where(m)}: selects no workload's pods`);
      continue;
    }
    const ports = (target.obj.spec?.template?.spec?.containers ?? []).flatMap(c => c.ports ?? []);
    for (const port of obj.spec?.ports ?? []) {
      const t = port.targetPort ?? port.port;
      const found = typeof t === "string" ? ports.some(p => p.name === t) : ports.some(p => p.containerPort === t);
      if (!found) problems.push(`${where(m)}: targetPort ${String(t)} is not a port of ${where(target.m)}`);
    }
  }

  // The gateway: Service without affinity, HPA, PDB, and a grace period covering the drain.
  const gateway = deployed.get("gateway");
  if (!gateway) {
    problems.push("no gateway Deployment");
    return problems;
  }
  const gatewayLabels = gateway.obj.spec?.template?.metadata?.labels;
  const gatewayServices = services.filter(s => selects(s.obj.spec?.selector, gatewayLabels));
  if (gatewayServices.length === 0) problems.push("no Service selects the gateway pods");
  for (const { m, obj } of gatewayServices) {
    if (obj.spec?.sessionAffinity !== undefined && obj.spec.sessionAffinity !== "None") problems.push(`${where(m)}: the gateway Service must not use sessionAffinity (WebSocket clients need none)`);
  }
  const hpas = ofKind<HorizontalPodAutoscaler>("HorizontalPodAutoscaler");
  const gatewayHpa = hpas.find(h => h.obj.spec?.scaleTargetRef.kind === "Deployment" && h.obj.spec.scaleTargetRef.name === gateway.obj.metadata?.name);
  if (!gatewayHpa) problems.push("no HorizontalPodAutoscaler targets the gateway Deployment");
  else {
    if (gatewayHpa.obj.spec?.scaleTargetRef.apiVersion !== "apps/v1") problems.push(`${where(gatewayHpa.m)}: scaleTargetRef.apiVersion must be apps/v1`);
    if ((gatewayHpa.obj.spec?.minReplicas ?? 1) < 2) problems.push(`${where(gatewayHpa.m)}: keep at least 2 gateways`);
    const resources = (gatewayHpa.obj.spec?.metrics ?? []).map(metric => metric.resource?.name);
    for (const r of resources) {
      if (r && gateway.container.resources?.requests?.[r] === undefined) problems.push(`${where(gatewayHpa.m)}: scales on ${r} but the gateway requests none`);
    }
  }
  const pdbs = ofKind<PodDisruptionBudget>("PodDisruptionBudget");
  const gatewayPdb = pdbs.find(p => selectsLabelSelector(p.obj.spec?.selector, gatewayLabels));
  if (!gatewayPdb) problems.push("no PodDisruptionBudget selects the gateway pods");
  else {
    for (const other of workloads) {
      if (other.obj !== gateway.obj && selectsLabelSelector(gatewayPdb.obj.spec?.selector, other.obj.spec?.template?.metadata?.labels)) {
        problems.push(`${where(gatewayPdb.m)}: also selects ${where(other.m)}`);
      }
    }
  }
  const shutdownMs = Number(envOf(gateway.container, "SHUTDOWN_TIMEOUT_MS")?.value ?? options.defaultShutdownMs);
  const preStopMs = preStopSleepSeconds(gateway.container) * 1000;
  const graceMs = (gateway.obj.spec?.template?.spec?.terminationGracePeriodSeconds ?? 30) * 1000;
  if (preStopMs <= 0) problems.push(`${where(gateway.m)}: a preStop sleep lets endpoints go before the drain starts`);
  if (graceMs < preStopMs + shutdownMs + options.brokerStopMs) {
    problems.push(`${where(gateway.m)}: terminationGracePeriodSeconds ${graceMs / 1000} s < preStop ${preStopMs / 1000} s + SHUTDOWN_TIMEOUT_MS ${shutdownMs / 1000} s + broker stop ${options.brokerStopMs / 1000} s`);
  }
  if (gateway.obj.spec?.strategy?.rollingUpdate?.maxUnavailable !== 0) problems.push(`${where(gateway.m)}: rolling updates should keep every gateway until its replacement is ready (maxUnavailable: 0)`);
  return problems;
}
