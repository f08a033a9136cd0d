import { entryOf, unionOf } from '../registry.js';
import type { Destination, DestinationConfig, DestinationType, OpenContext } from './destination.js';
import { directoryDestination } from './directory.js';
import { kubernetesSecretDestination } from './kubernetes-secret.js';
import { memoryDestination } from './memory.js';

/** The destination types tbot.yaml accepts, as `storage:` and as an output's `destination:`. */
export const DESTINATION_TYPES: readonly DestinationType[] = [
  directoryDestination,
  memoryDestination,
  kubernetesSecretDestination,
];

export const destinationSchema = unionOf(DESTINATION_TYPES, 'destination');

export function openDestination(cfg: DestinationConfig, ctx?: OpenContext): Destination {
  return entryOf(DESTINATION_TYPES, cfg.type).build(cfg, ctx);
}

/** The directories a destination writes. */
export function destinationPaths(cfg: DestinationConfig): string[] {
  return entryOf(DESTINATION_TYPES, cfg.type).paths(cfg);
}

/** What a destination writes that no other writer may share: `the directory DIR`, `the Kubernetes Secret NS/N`. */
export function destinationTargets(cfg: DestinationConfig): string[] {
  const entry = entryOf(DESTINATION_TYPES, cfg.type);
  return [...entry.paths(cfg).map((p) => `the directory ${p}`), ...(entry.targets?.(cfg) ?? [])];
}
