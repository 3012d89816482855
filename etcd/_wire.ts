// The etcd v3 JSON gateway's shapes (etcd 3.4, `/v3/...`), typed once.
//
// The gateway is grpc-gateway over etcd's protobufs, so:
// - bytes (keys, values) are base64: made and read only by `encodeKey` /
//   `decodeKey` below;
// - int64 (revisions, lease ids, TTLs) are JSON strings: read only by `int`,
//   which gives a `bigint` (lease ids and revisions may exceed 2^53);
// - fields at their zero value are left out (a PUT event has no `type`, an
//   empty range no `kvs`, a key without lease no `lease`), hence the `?`.

/** Anything but printable ASCII: such keys take the UTF-8 path. */
const NOT_PRINTABLE_ASCII = /[^\x20-\x7e]/;

/** Base64 of a UTF-8 string: how the gateway wants keys and values. */
export function encodeKey(key: string): string {
  // Printable ASCII (every key this module makes from such a name): btoa takes it as is.
  if (!NOT_PRINTABLE_ASCII.test(key)) return btoa(key);
  const bytes = new TextEncoder().encode(key);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** The UTF-8 string behind a gateway base64 field. */
export function decodeKey(base64: string | undefined): string {
  if (base64 === undefined) return "";
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

/**
 * The end of the range of every key starting with `prefix` (etcd's
 * `GetPrefixRangeEnd`: the prefix with its last byte incremented), base64.
 */
export function prefixEnd(prefix: string): string {
  const bytes = new TextEncoder().encode(prefix);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0xff) end--;
  if (end === 0) return btoa("\0"); // every key
  const out = bytes.slice(0, end);
  out[end - 1]++;
  let binary = "";
  for (const b of out) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** An int64 field (a JSON string, or absent for zero) as a bigint. */
export function int(value: string | number | undefined): bigint {
  return value === undefined ? 0n : BigInt(value);
}

/** An int64 for a request body: a decimal string. */
export type Int64 = string;

/** `etcdserverpb.ResponseHeader`. */
export interface ResponseHeader {
  cluster_id?: Int64;
  member_id?: Int64;
  revision?: Int64;
  raft_term?: Int64;
}

/** `mvccpb.KeyValue`. */
export interface KeyValue {
  key?: string;
  create_revision?: Int64;
  mod_revision?: Int64;
  version?: Int64;
  value?: string;
  lease?: Int64;
}

/** `etcdserverpb.RangeRequest` (the fields this module uses). */
export interface RangeRequest {
  key: string;
  range_end?: string;
  limit?: Int64;
  sort_order?: "NONE" | "ASCEND" | "DESCEND";
  sort_target?: "KEY" | "VERSION" | "CREATE" | "MOD" | "VALUE";
  keys_only?: boolean;
  /** Read the member's own state, without a Raft round (possibly behind). */
  serializable?: boolean;
  max_mod_revision?: Int64;
  max_create_revision?: Int64;
}

/** `etcdserverpb.RangeResponse`. */
export interface RangeResponse {
  header?: ResponseHeader;
  kvs?: KeyValue[];
  count?: Int64;
}

/** `etcdserverpb.PutRequest`. */
export interface PutRequest {
  key: string;
  value: string;
  lease?: Int64;
}

/** `etcdserverpb.DeleteRangeRequest`. */
export interface DeleteRangeRequest {
  key: string;
  range_end?: string;
}

/** `etcdserverpb.DeleteRangeResponse`. */
export interface DeleteRangeResponse {
  header?: ResponseHeader;
  deleted?: Int64;
}

/** `etcdserverpb.Compare`: only the comparisons this module makes. */
export interface Compare {
  result: "EQUAL" | "GREATER" | "LESS" | "NOT_EQUAL";
  target: "VERSION" | "CREATE" | "MOD" | "VALUE" | "LEASE";
  key: string;
  create_revision?: Int64;
  version?: Int64;
}

/** `etcdserverpb.RequestOp`: one of its fields. */
export interface RequestOp {
  request_range?: RangeRequest;
  request_put?: PutRequest;
  request_delete_range?: DeleteRangeRequest;
}

/** `etcdserverpb.TxnRequest`. */
export interface TxnRequest {
  compare?: Compare[];
  success?: RequestOp[];
  failure?: RequestOp[];
}

/** `etcdserverpb.ResponseOp`. */
export interface ResponseOp {
  response_range?: RangeResponse;
  response_put?: { header?: ResponseHeader };
  response_delete_range?: DeleteRangeResponse;
}

/** `etcdserverpb.TxnResponse`. */
export interface TxnResponse {
  header?: ResponseHeader;
  succeeded?: boolean;
  responses?: ResponseOp[];
}

/** `etcdserverpb.LeaseGrantRequest` (`TTL` in seconds). */
export interface LeaseGrantRequest {
  TTL: Int64;
  ID?: Int64;
}

/** `etcdserverpb.LeaseGrantResponse`. */
export interface LeaseGrantResponse {
  header?: ResponseHeader;
  ID?: Int64;
  TTL?: Int64;
  error?: string;
}

/** `etcdserverpb.LeaseKeepAliveResponse`, one message of the stream. */
export interface LeaseKeepAliveResponse {
  header?: ResponseHeader;
  ID?: Int64;
  /** Seconds left; absent (0) when the lease no longer exists. */
  TTL?: Int64;
}

/** `etcdserverpb.WatchCreateRequest`. */
export interface WatchCreateRequest {
  key: string;
  range_end?: string;
  start_revision?: Int64;
  filters?: ("NOPUT" | "NODELETE")[];
}

/** `mvccpb.Event`. */
export interface WatchEvent {
  /** Absent for a PUT. */
  type?: "PUT" | "DELETE";
  kv?: KeyValue;
}

/** `etcdserverpb.WatchResponse`. */
export interface WatchResponse {
  header?: ResponseHeader;
  watch_id?: Int64;
  created?: boolean;
  canceled?: boolean;
  compact_revision?: Int64;
  cancel_reason?: string;
  events?: WatchEvent[];
}

/** One line of a gateway stream: a message or the error that ended it. */
export interface StreamMessage<T> {
  result?: T;
  error?: GatewayError;
}

/** The body of a failed gateway call (a gRPC status). */
export interface GatewayError {
  error?: string;
  message?: string;
  /** The gRPC status code (14 Unavailable, 16 Unauthenticated, …). */
  code?: number;
}

/** `etcdserverpb.AuthenticateResponse`. */
export interface AuthenticateResponse {
  header?: ResponseHeader;
  token?: string;
}

/** gRPC status codes the client tells apart. */
export const GRPC = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
