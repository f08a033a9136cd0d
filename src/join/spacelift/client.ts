import { envTokenClient } from '../jwt/method.js';

export const spaceliftClient = envTokenClient('spacelift', 'SPACELIFT_OIDC_TOKEN', 'tbot must run inside a Spacelift run');
