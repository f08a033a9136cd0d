import { envTokenClient } from '../jwt/client.js';

export const spaceliftClient = envTokenClient(
  'spacelift',
  'SPACELIFT_OIDC_TOKEN',
  'tbot must run inside a Spacelift run',
);
