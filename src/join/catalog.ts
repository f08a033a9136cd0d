/**
 * The catalog of join methods: names and properties only, so config validation (tbot) and
 * resource validation (Auth Service) share one list without importing either half.
 * Implementations register in servers.ts (Auth Service) and clients.ts (tbot).
 */
export interface JoinMethodInfo {
  name: string;
  /** The identity from this method renews over mTLS; otherwise tbot re-joins for each identity. */
  renewable: boolean;
  /** The token's name is the join secret: stored only as a hash, never listed. */
  secretName: boolean;
  /**
   * Where its tokens keep their `allow` rules: under the method (`spec.github.allow`), as
   * Teleport keeps them for every platform method but ec2 and iam; at `spec.allow` (`spec`), as
   * Teleport keeps them for ec2 and iam; or nowhere (the method takes none).
   */
  allow: 'method' | 'spec' | 'none';
}

export const JOIN_METHODS: readonly JoinMethodInfo[] = Object.freeze([
  { name: 'token', renewable: true, secretName: true, allow: 'none' },
  { name: 'bound_keypair', renewable: true, secretName: false, allow: 'none' },
  // platform-signed documents: every identity is a fresh join (as in Teleport)
  { name: 'github', renewable: false, secretName: false, allow: 'method' },
  { name: 'gitlab', renewable: false, secretName: false, allow: 'method' },
  { name: 'kubernetes', renewable: false, secretName: false, allow: 'method' },
  { name: 'circleci', renewable: false, secretName: false, allow: 'method' },
  { name: 'gcp', renewable: false, secretName: false, allow: 'method' },
  { name: 'terraform_cloud', renewable: false, secretName: false, allow: 'method' },
  { name: 'spacelift', renewable: false, secretName: false, allow: 'method' },
  { name: 'bitbucket', renewable: false, secretName: false, allow: 'method' },
  { name: 'azure_devops', renewable: false, secretName: false, allow: 'method' },
  // cloud-signed documents, checked against a challenge: renewed by joining again too
  { name: 'azure', renewable: false, secretName: false, allow: 'method' },
  // AWS: a signed sts:GetCallerIdentity request re-joins for every identity (as in Teleport); the
  // EC2 instance identity document only bootstraps an identity that then renews
  { name: 'iam', renewable: false, secretName: false, allow: 'spec' },
  { name: 'ec2', renewable: true, secretName: false, allow: 'spec' },
]);

export function joinMethodInfo(name: string): JoinMethodInfo | undefined {
  return JOIN_METHODS.find((m) => m.name === name);
}

/** Teleport's join methods that mwi does not have (yet): named as such when a file uses one. */
const TELEPORT_ONLY = ['tpm', 'oracle', 'env0', 'generic_oidc'];

/** Why `name` is not a join method mwi takes: a typo, or one of Teleport's that mwi lacks. */
export function unknownJoinMethod(name: string): string {
  const known = `(expected one of: ${joinMethodNames().join(', ')})`;
  return TELEPORT_ONLY.includes(name)
    ? `join method ${JSON.stringify(name)} is Teleport's and not in mwi yet ${known}; ` +
        'docs/teleport.md lists what is planned'
    : `unknown join method ${JSON.stringify(name)} ${known}`;
}

export function joinMethodNames(): string[] {
  return JOIN_METHODS.map((m) => m.name);
}
