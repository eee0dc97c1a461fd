import type { Deployment, StatefulSet } from "kubernetes-types/apps/v1";
import type { HorizontalPodAutoscaler } from "kubernetes-types/autoscaling/v2";
import type { ConfigMap, Namespace, Secret, Service } from "kubernetes-types/core/v1";
import type { Ingress } from "kubernetes-types/networking/v1";
import type { PodDisruptionBudget } from "kubernetes-types/policy/v1";

/**
 * The Kubernetes kinds k8s/ may use, keyed by `<apiVersion>/<kind>`, as the Kubernetes API types
 * (kubernetes-types, generated from the Kubernetes 1.30 OpenAPI spec). test/helpers/k8s-manifests.ts
 * turns this into a strict JSON Schema (unknown fields refused). A manifest of any other kind or
 * apiVersion fails validation until it is added here.
 */
export interface K8sKinds {
  "v1/ConfigMap": ConfigMap;
  "v1/Secret": Secret;
  "v1/Service": Service;
  "v1/Namespace": Namespace;
  "apps/v1/Deployment": Deployment;
  "apps/v1/StatefulSet": StatefulSet;
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler;
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget;
  "networking.k8s.io/v1/Ingress": Ingress;
}
