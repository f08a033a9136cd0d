import { MwiError } from '../errors.js';
import { joinMethodNames, unknownJoinMethod } from '../join/catalog.js';
import { CLIENT_METHODS } from '../join/clients.js';

// Teleport's joining URI (tbot.yaml `join_uri`, `tbot start --join-uri`): one value that says where
// the Auth Service is, how to join and with what, as `tbot+<proxy|auth>+<method>://<token>[:<param>]@host[:port]`.
// It may hold a secret (the token, a bound keypair's registration secret): no error repeats it.

/** A parsed join URI. */
export interface JoinUri {
  /** `proxy`: the address is proxy_server (system trust store without a pin); `auth`: auth_server. */
  addressKind: 'proxy' | 'auth';
  /** mwi's name of the join method (`bound_keypair`). */
  joinMethod: string;
  /** The join token (percent-decoded). Never logged. */
  token: string;
  /** The method's parameter (percent-decoded; for bound_keypair the registration secret). Never logged. */
  parameter: string | undefined;
  /** HOST, HOST:PORT or [V6]:PORT, as proxy_server and auth_server take it. */
  address: string;
}

const FORM = 'tbot+proxy+METHOD://TOKEN[:PARAMETER]@HOST:PORT (or tbot+auth+...)';

/**
 * The join method a URI's scheme names: Teleport writes names with `_` with `-` or without a
 * separator (`bound-keypair`, `boundkeypair`); a URI scheme cannot hold `_`.
 */
function methodOf(text: string, fail: (message: string) => never): string {
  for (const name of joinMethodNames()) {
    if (text === name.replace(/_/g, '-') || text === name.replace(/_/g, '')) return name;
  }
  if (text.includes('_'))
    fail(
      `join method ${JSON.stringify(text)}: a URI scheme cannot hold "_": write it with "-" or no separator ` +
        `(${text.replace(/_/g, '-')} or ${text.replace(/_/g, '')})`,
    );
  // Teleport's own methods get their "not in mwi yet" explanation
  return fail(
    unknownJoinMethod(text.replace(/-/g, '_')).replace(/expected one of: [^)]*/, (l) => l.replace(/_/g, '-')),
  );
}

/** Percent-decodes a part of the user info, naming it (never its value) when it is malformed. */
function decode(part: string, what: string, fail: (message: string) => never): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return fail(`the ${what} holds a % that starts no %XX escape (percent-encode it: %25)`);
  }
}

/**
 * Parses a join URI; every error is a BAD_CONFIG naming `field` and never repeats the token or
 * the parameter. Port: 1 to 65535, or absent (mwi's default, 3025). The token and parameter may
 * hold any character percent-encoded (`%40` for "@", `%3A` for ":").
 *
 * @example parseJoinUri('tbot+proxy+bound-keypair://bot-token:s3cret@mwi.example.com:443')
 * // { addressKind: 'proxy', joinMethod: 'bound_keypair', token: 'bot-token', parameter: 's3cret',
 * //   address: 'mwi.example.com:443' }
 */
export function parseJoinUri(text: string, field = 'join_uri'): JoinUri {
  const fail = (message: string): never => {
    throw new MwiError('BAD_CONFIG', message, { field });
  };
  // characters no URI holds: a line break or a space here is a copy-and-paste accident
  if (/[\s\p{C}]/u.test(text)) fail(`a join URI holds no spaces or control characters; expected ${FORM}`);
  const m = /^([A-Za-z][A-Za-z0-9+._-]*):\/\/(.*)$/s.exec(text);
  if (!m) fail(`expected ${FORM}`);
  const [, schemeText, rest] = m as unknown as [string, string, string];
  const scheme = schemeText.toLowerCase().split('+');
  if (scheme.length !== 3 || scheme[0] !== 'tbot')
    fail(`unsupported joining URI scheme ${JSON.stringify(schemeText.slice(0, 60))}; expected ${FORM}`);
  const [, kind, methodText] = scheme as [string, string, string];
  if (kind !== 'proxy' && kind !== 'auth')
    return fail(
      `address kind ${JSON.stringify(kind.slice(0, 30))} must be one of proxy, auth (tbot+proxy+... or tbot+auth+...)`,
    );
  const joinMethod = methodOf(methodText, fail);
  // the authority alone: a path, query or fragment would be ignored by Teleport and means a typo here
  const authority = rest.endsWith('/') ? rest.slice(0, -1) : rest;
  if (/[/?#]/.test(authority))
    fail('a join URI has no path, query or fragment (percent-encode "/", "?" or "#" in the token: %2F, %3F, %23)');
  const at = authority.lastIndexOf('@');
  if (at < 0) fail(`no token: expected ${FORM}`);
  const userinfo = authority.slice(0, at);
  const hostPort = authority.slice(at + 1);
  if (userinfo.includes('@')) fail('the token holds an "@": percent-encode it (%40)');
  const colon = userinfo.indexOf(':');
  const token = decode(colon < 0 ? userinfo : userinfo.slice(0, colon), 'token', fail);
  const parameter = colon < 0 ? undefined : decode(userinfo.slice(colon + 1), 'parameter', fail);
  if (!token) fail(`no token before "@": expected ${FORM}`);
  if (!hostPort) fail(`no host after "@": expected ${FORM}`);
  // HOST, HOST:PORT, [V6] or [V6]:PORT
  const v6 = hostPort.startsWith('[') ? hostPort.indexOf(']') + 1 : 0;
  const colon2 = v6 > 0 ? (hostPort[v6] === ':' ? v6 : -1) : hostPort.lastIndexOf(':');
  const host = colon2 < 0 ? hostPort : hostPort.slice(0, colon2);
  const port = colon2 < 0 ? undefined : hostPort.slice(colon2 + 1);
  if (!host) fail(`no host before the port: expected ${FORM}`);
  if (!/^(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+)$/.test(host))
    fail(`${JSON.stringify(host.slice(0, 255))} is not a host name or address (HOST:PORT or [IPv6]:PORT)`);
  if (port !== undefined && !/^\d+$/.test(port)) fail(`port ${JSON.stringify(port.slice(0, 20))} is not a number`);
  if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535))
    fail(`port ${port.slice(0, 20)} is out of range (1 to 65535)`);
  return {
    addressKind: kind,
    joinMethod,
    token,
    parameter: parameter || undefined,
    address: port !== undefined ? `${host}:${Number(port)}` : host,
  };
}

/** The flag that sets a tbot.yaml key, for conflict messages. */
const FLAG_OF: Readonly<Record<string, string>> = {
  auth_server: '--auth-server',
  proxy_server: '--proxy-server',
  'onboarding.join_method': '--join-method',
  'onboarding.token': '--token',
  'onboarding.bound_keypair.registration_secret': '--registration-secret',
  'onboarding.bound_keypair.registration_secret_path': '--registration-secret-path',
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * tbot.yaml with its `join_uri` (the file's, or `--join-uri`) applied, as Teleport applies it:
 * the address becomes proxy_server or auth_server, the method onboarding.join_method, the token
 * onboarding.token, and the parameter the key the method's client half names (bound_keypair:
 * registration_secret; gitlab: token_env_var_name). A setting given too is an error naming both,
 * unless it says the same (join_method, the parameter's key); a parameter for a method that takes
 * none is ignored with a warning. Without join_uri, `raw` is returned as it is. Shapes the schema
 * refuses (a `join_uri` that is no string) are left for it. `literal` lists the settings the URI
 * gave: they are the values themselves, never a file path to read (a pasted URI whose token is
 * `%2Fetc%2Fshadow` must not send that file to the URI's host).
 */
export function applyJoinUri(raw: unknown): { config: unknown; warnings: string[]; literal: string[] } {
  if (!isObject(raw) || typeof raw.join_uri !== 'string') return { config: raw, warnings: [], literal: [] };
  const uri = parseJoinUri(raw.join_uri);
  const conflict = (key: string): never => {
    const where = FLAG_OF[key] ? ` (${FLAG_OF[key]} or tbot.yaml)` : '';
    throw new MwiError(
      'BAD_CONFIG',
      `the join URI (--join-uri or tbot.yaml join_uri) conflicts with ${key}${where}: ` +
        'the URI gives the address, the join method, the token and its parameter; give each one way',
      { field: 'join_uri' },
    );
  };
  if (raw.auth_server !== undefined) conflict('auth_server');
  if (raw.proxy_server !== undefined) conflict('proxy_server');
  const onboarding = raw.onboarding === undefined ? {} : raw.onboarding;
  if (!isObject(onboarding)) return { config: raw, warnings: [], literal: [] };
  if (onboarding.join_method !== undefined && onboarding.join_method !== uri.joinMethod)
    conflict('onboarding.join_method');
  if (onboarding.token !== undefined) conflict('onboarding.token');
  const next: Record<string, unknown> = { ...onboarding, join_method: uri.joinMethod, token: uri.token };
  const warnings: string[] = [];
  // a pasted URI is not trusted to name local files: its values are never read as paths
  const literal = ['onboarding.token'];
  if (uri.parameter !== undefined) {
    const param = CLIENT_METHODS.get(uri.joinMethod)?.options?.uriParameter;
    if (!param) {
      warnings.push(
        `join_uri: join method ${uri.joinMethod} takes no parameter in mwi; the URI's parameter is ignored`,
      );
    } else {
      const block = onboarding[uri.joinMethod] ?? {};
      if (!isObject(block)) return { config: raw, warnings: [], literal: [] };
      for (const other of param.conflicts ?? [])
        if (block[other] !== undefined) conflict(`onboarding.${uri.joinMethod}.${other}`);
      if (block[param.key] !== undefined && block[param.key] !== uri.parameter)
        conflict(`onboarding.${uri.joinMethod}.${param.key}`);
      next[uri.joinMethod] = { ...block, [param.key]: uri.parameter };
      literal.push(`onboarding.${uri.joinMethod}.${param.key}`);
    }
  }
  const address = uri.addressKind === 'proxy' ? { proxy_server: uri.address } : { auth_server: uri.address };
  return { config: { ...raw, ...address, onboarding: next }, warnings, literal };
}
