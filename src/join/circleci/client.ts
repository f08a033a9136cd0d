import { envTokenClient } from '../jwt/client.js';

export const circleciClient = envTokenClient('circleci', 'CIRCLE_OIDC_TOKEN', 'tbot must run inside a CircleCI job');
