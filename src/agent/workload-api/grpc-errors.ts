import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { isMwiError } from '../../errors.js';

/** The Workload Endpoint spec's security header: every call carries it, or gets InvalidArgument. */
export const SECURITY_HEADER = 'workload.spiffe.io';

/** A gRPC error with its status code. */
export class GrpcError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

/** Throws InvalidArgument unless the call carries `workload.spiffe.io: true` (SPIFFE Workload Endpoint, 4). */
export function requireSecurityHeader(metadata: Metadata): void {
  const values = metadata.get(SECURITY_HEADER);
  if (values.length !== 1 || values[0] !== 'true')
    throw new GrpcError(status.INVALID_ARGUMENT, 'security header missing from request (workload.spiffe.io: true)');
}

/**
 * What a workload is told: the Auth Service refusing (no identity applies, a rule failed) is
 * PermissionDenied, an Auth Service tbot cannot reach is Unavailable (the workload retries), the
 * rest Internal. The Auth Service's reason goes to tbot's log, for the operator.
 */
export function toServiceError(err: unknown): Partial<ServiceError> {
  if (err instanceof GrpcError) return { code: err.code, details: err.message };
  if (isMwiError(err, 'UNREACHABLE') || isMwiError(err, 'RATE_LIMITED'))
    return { code: status.UNAVAILABLE, details: 'the Auth Service is unreachable; retry' };
  if (isMwiError(err, 'ACCESS_DENIED') || isMwiError(err, 'NOT_FOUND') || isMwiError(err, 'BAD_REQUEST'))
    return { code: status.PERMISSION_DENIED, details: `no identity issued: ${err.message}` };
  return { code: status.INTERNAL, details: 'tbot failed to answer (see its log)' };
}
