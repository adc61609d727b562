// The largest message each request can be under the server's limits, judged from a message's
// 5-byte gRPC length prefix before its body arrives: a Set of a value far over --max-value-bytes is
// then refused with INVALID_ARGUMENT naming the limit at once, and its client is told to stop sending
// (refuseStream: RST_STREAM NO_ERROR), instead of the server reading it whole (up to grpc-js's receive
// limit) or grpc-js answering RESOURCE_EXHAUSTED "Received message larger than max".
import { fieldLength } from './codec';
import { FORMAT_MAX_KEY_BYTES, type ServerConfig } from './config';

/** Bytes of a uint64 field at most: tag byte + 10-byte varint. */
const UINT64_FIELD_MAX = 11;

/** The lengths of the length-delimited fields 1 and 2 (key/prefix, value) found in `body`, the
 *  message bytes seen so far; a field whose length was not seen yet is absent. */
function fieldLengths(body: Buffer): { 1?: number; 2?: number } {
  const found: { 1?: number; 2?: number } = {};
  let at = 0;
  const varint = (): number | undefined => {
    let n = 0;
    for (let shift = 1; at < body.length && shift < 2 ** 56; shift *= 128) {
      const b = body[at++]!;
      n += (b & 0x7f) * shift;
      if (b < 0x80) return n;
    }
    return undefined;
  };
  while (at < body.length) {
    const tag = varint();
    if (tag === undefined) break;
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === 0) { if (varint() === undefined) break; continue; }
    if (wire === 1 || wire === 5) { at += wire === 1 ? 8 : 4; continue; }
    if (wire !== 2) break;
    const len = varint();
    if (len === undefined) break;
    if (field === 1 || field === 2) found[field] = len;
    at += len;
  }
  return found;
}

type Limits = Pick<ServerConfig, 'maxKeyBytes' | 'maxValueBytes'>;

// What a client is told of a field over its limit, by the handlers and from a length prefix alike.
export const valueOverLimit = (len: number, max: number) => `value is ${len} bytes; over the value limit of ${max} bytes (--max-value-bytes)`;
export const setKeyOverLimit = (len: number, max: number) => `key is ${len} bytes; over the key limit of ${max} bytes (--max-key-bytes; keys must be 1..${max} bytes)`;
export const readKeyOverLimit = (len: number) => `key is ${len} bytes; over the largest key the file format holds (${FORMAT_MAX_KEY_BYTES} bytes), so no such key is stored`;
export const prefixOverLimit = (len: number) => `prefix is ${len} bytes; over the largest key the file format holds (${FORMAT_MAX_KEY_BYTES} bytes)`;

/** The method a call's :path names ("/lbkv.v1.KeyValueStore/Set": "Set"). */
export const methodOf = (path: string) => path.slice(path.lastIndexOf('/') + 1);

/**
 * Why a request to `method` (methodOf its :path) whose message declares `declared` bytes cannot be
 * valid, or undefined if it may be. `body` holds what of the message arrived with its prefix, used to name the field at
 * fault (a client puts the key ahead of the value, so the first frame shows both lengths); the
 * reasons read as the handlers' own. Methods not listed are left to grpc-js's receive limit.
 */
export function oversizeRequestReason(method: string, declared: number, body: Buffer, cfg: Limits): string | undefined {
  if (method === 'Set') {
    if (declared <= fieldLength(cfg.maxKeyBytes) + fieldLength(cfg.maxValueBytes)) return undefined;
    const f = fieldLengths(body);
    if (f[2] !== undefined && f[2] > cfg.maxValueBytes) return valueOverLimit(f[2], cfg.maxValueBytes);
    if (f[1] !== undefined && f[1] > cfg.maxKeyBytes) return setKeyOverLimit(f[1], cfg.maxKeyBytes);
    return `request is ${declared} bytes, more than any valid Set: a key of at most ${cfg.maxKeyBytes} bytes (--max-key-bytes) and a value of at most ${cfg.maxValueBytes} bytes (--max-value-bytes)`;
  }
  if (method === 'Get' || method === 'GetPrefix') {
    const get = method === 'Get';
    if (declared <= fieldLength(FORMAT_MAX_KEY_BYTES) + (get ? 0 : UINT64_FIELD_MAX)) return undefined;
    const len = fieldLengths(body)[1];
    if (len !== undefined && len > FORMAT_MAX_KEY_BYTES) return get ? readKeyOverLimit(len) : prefixOverLimit(len);
    return `request is ${declared} bytes, more than any valid ${method}: a ${get ? 'key' : 'prefix'} of at most ${FORMAT_MAX_KEY_BYTES} bytes (the largest key the file format holds)`;
  }
  return undefined;
}
