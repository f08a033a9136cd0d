import { joinMethodInfo, unknownJoinMethod } from '../../join/catalog.js';

/** What is wrong with a `--join-method`: a typo, or one of Teleport's that mwi lacks (said so). */
export function joinMethodProblem(value: string): string | undefined {
  return joinMethodInfo(value) ? undefined : unknownJoinMethod(value);
}
