// The SPIFFE Workload API (spiffe/spiffe standards/workloadapi.proto, Apache-2.0) as a protobufjs
// JSON descriptor: embedded, so that a single-file tbot (scripts/build-binary.mjs) needs no .proto
// file beside it. The proto has no `package`: methods are /SpiffeWorkloadAPI/<Name>.
// test/fixtures/workloadapi.proto is the same proto as text (the Python client compiles it); a unit
// test checks that the two agree.
import { loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { fromJSON } from '@grpc/proto-loader';

const repeated = (type: string, id: number) => ({ rule: 'repeated', type, id });
const field = (type: string, id: number) => ({ type, id });

/** The proto's messages and service, with google.protobuf.Struct for ValidateJWTSVIDResponse.claims. */
export const WORKLOAD_API_DESCRIPTOR = {
  nested: {
    SpiffeWorkloadAPI: {
      methods: {
        FetchX509SVID: { requestType: 'X509SVIDRequest', responseType: 'X509SVIDResponse', responseStream: true },
        FetchX509Bundles: {
          requestType: 'X509BundlesRequest',
          responseType: 'X509BundlesResponse',
          responseStream: true,
        },
        FetchJWTSVID: { requestType: 'JWTSVIDRequest', responseType: 'JWTSVIDResponse' },
        FetchJWTBundles: { requestType: 'JWTBundlesRequest', responseType: 'JWTBundlesResponse', responseStream: true },
        ValidateJWTSVID: { requestType: 'ValidateJWTSVIDRequest', responseType: 'ValidateJWTSVIDResponse' },
      },
    },
    X509SVIDRequest: { fields: {} },
    X509SVIDResponse: {
      fields: {
        svids: repeated('X509SVID', 1),
        crl: repeated('bytes', 2),
        federated_bundles: { keyType: 'string', type: 'bytes', id: 3 },
      },
    },
    X509SVID: {
      fields: {
        spiffe_id: field('string', 1),
        x509_svid: field('bytes', 2),
        x509_svid_key: field('bytes', 3),
        bundle: field('bytes', 4),
        hint: field('string', 5),
      },
    },
    X509BundlesRequest: { fields: {} },
    X509BundlesResponse: {
      fields: { crl: repeated('bytes', 1), bundles: { keyType: 'string', type: 'bytes', id: 2 } },
    },
    JWTSVIDRequest: { fields: { audience: repeated('string', 1), spiffe_id: field('string', 2) } },
    JWTSVIDResponse: { fields: { svids: repeated('JWTSVID', 1) } },
    JWTSVID: { fields: { spiffe_id: field('string', 1), svid: field('string', 2), hint: field('string', 3) } },
    JWTBundlesRequest: { fields: {} },
    JWTBundlesResponse: { fields: { bundles: { keyType: 'string', type: 'bytes', id: 1 } } },
    ValidateJWTSVIDRequest: { fields: { audience: field('string', 1), svid: field('string', 2) } },
    ValidateJWTSVIDResponse: {
      fields: { spiffe_id: field('string', 1), claims: field('google.protobuf.Struct', 2) },
    },
    google: {
      nested: {
        protobuf: {
          nested: {
            Struct: { fields: { fields: { keyType: 'string', type: 'Value', id: 1 } } },
            Value: {
              oneofs: {
                kind: {
                  oneof: ['null_value', 'number_value', 'string_value', 'bool_value', 'struct_value', 'list_value'],
                },
              },
              fields: {
                null_value: field('NullValue', 1),
                number_value: field('double', 2),
                string_value: field('string', 3),
                bool_value: field('bool', 4),
                struct_value: field('Struct', 5),
                list_value: field('ListValue', 6),
              },
            },
            NullValue: { values: { NULL_VALUE: 0 } },
            ListValue: { fields: { values: repeated('Value', 1) } },
          },
        },
      },
    },
  },
};

/** The grpc-js service definition of SpiffeWorkloadAPI (field names as in the proto). */
export function workloadApiService(): ServiceDefinition {
  const def = fromJSON(WORKLOAD_API_DESCRIPTOR as Parameters<typeof fromJSON>[0], {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  const pkg = loadPackageDefinition(def) as unknown as { SpiffeWorkloadAPI: { service: ServiceDefinition } };
  return pkg.SpiffeWorkloadAPI.service;
}

/** The `google.protobuf.Struct` message (as proto-loader encodes it, keepCase) of a JSON object. */
export function toStruct(obj: Record<string, unknown>): { fields: Record<string, unknown> } {
  const value = (v: unknown): Record<string, unknown> => {
    if (v === null || v === undefined) return { null_value: 'NULL_VALUE' };
    if (typeof v === 'number') return { number_value: v };
    if (typeof v === 'string') return { string_value: v };
    if (typeof v === 'boolean') return { bool_value: v };
    if (Array.isArray(v)) return { list_value: { values: v.map(value) } };
    return { struct_value: toStruct(v as Record<string, unknown>) };
  };
  return { fields: Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, value(v)])) };
}
