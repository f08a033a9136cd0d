import type { JoinHandler, ServerDeps, ServerJoinMethod, ServerSection } from './types.js';
import { tokenServer } from './token/server.js';
import { boundKeypairServer } from './bound_keypair/server.js';
import { githubServer } from './github/server.js';
import { gitlabServer } from './gitlab/server.js';
import { kubernetesServer } from './kubernetes/server.js';
import { circleciServer } from './circleci/server.js';
import { gcpServer } from './gcp/server.js';
import { terraformCloudServer } from './terraform_cloud/server.js';
import { spaceliftServer } from './spacelift/server.js';
import { bitbucketServer } from './bitbucket/server.js';
import { azureDevopsServer } from './azure_devops/server.js';
import { azureServer } from './azure/server.js';
import { iamServer } from './iam/server.js';
import { ec2Server } from './ec2/server.js';

/** Server halves by method name (Auth Service side only). */
export const SERVER_METHODS: ReadonlyMap<string, ServerJoinMethod> = new Map(
  [
    tokenServer,
    boundKeypairServer,
    githubServer,
    gitlabServer,
    kubernetesServer,
    circleciServer,
    gcpServer,
    terraformCloudServer,
    spaceliftServer,
    bitbucketServer,
    azureDevopsServer,
    azureServer,
    iamServer,
    ec2Server,
  ].map((m) => [m.name, m]),
);

/** The mwi.yaml sections the server halves read, each once, in registry order. */
export const SERVER_SECTIONS: readonly ServerSection[] = [
  ...new Set([...SERVER_METHODS.values()].flatMap((m) => m.sections ?? [])),
];

/** Options of the server halves: each mwi.yaml section's parsed value by its key (see config.ts). */
export type JoinMethodOptions = Readonly<Record<string, unknown>>;

/**
 * Builds every server half (of `methods`: the registry, or a test's) for one Auth Service process.
 * A section missing from `options` gets its defaults; each section's value is built once and
 * shared by the methods that read it.
 */
export function createJoinHandlers(
  deps: ServerDeps,
  options: JoinMethodOptions,
  methods: ReadonlyMap<string, ServerJoinMethod> = SERVER_METHODS,
): ReadonlyMap<string, JoinHandler> {
  const built = new Map<ServerSection, unknown>();
  const value = (s: ServerSection): unknown => {
    if (!built.has(s)) built.set(s, s.build(options[s.key] ?? s.schema.parse(undefined), deps));
    return built.get(s);
  };
  return new Map(
    [...methods.values()].map((m) => {
      const section = <T>(s: ServerSection<unknown, T>): T => {
        // a method reading a section it did not declare would get no mwi.yaml key for it
        if (!m.sections?.includes(s)) {
          throw new TypeError(`join method ${m.name} reads mwi.yaml section ${s.key} without declaring it`);
        }
        return value(s) as T;
      };
      return [m.name, m.create(deps, section)];
    }),
  );
}
