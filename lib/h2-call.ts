// What the service needs from the HTTP/2 stream under a grpc-js server call and grpc-js does not
// offer: resetting it, knowing whether a response reached the transport whole, and seeing a large
// message leave in parts. grpc-js 1.14 with no server interceptors (as here) keeps that stream as
// `call.call.stream`; test/service-slow-clients.test.ts and service-concurrency.test.ts fail if that
// changes (each helper then does what the service did before it had the stream).
import { constants, type Http2Stream, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';

export function h2StreamOf(call: object): Http2Stream | undefined {
  const s = (call as { call?: { stream?: Http2Stream } }).call?.stream;
  return s && typeof s.close === 'function' && 'rstCode' in s ? s : undefined;
}

/** Calls `onStream` with every HTTP/2 stream `server` accepts (and its request headers) from now on, whether or not its
 *  handler has run yet: grpc-js runs a unary handler only once the whole request has arrived, so a
 *  large Set still uploading has a stream and no call. The http2 servers are grpc-js 1.14's private
 *  `http2Servers` (bound ones); false if they are not found, and nothing is watched. */
export function watchStreams(server: object, onStream: (stream: Http2Stream, headers: IncomingHttpHeaders) => void): boolean {
  const servers = (server as { http2Servers?: Map<{ on: (e: 'stream', l: (s: Http2Stream, h: IncomingHttpHeaders) => void) => void }, unknown> }).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) return false;
  for (const h2server of servers.keys()) h2server.on('stream', onStream);
  return true;
}

/** Resets the stream (RST_STREAM `code`), dropping whatever is buffered in it. */
export function resetStream(call: object, code: number = constants.NGHTTP2_CANCEL): void {
  const h2 = h2StreamOf(call);
  if (h2 && !h2.destroyed && !h2.closed) h2.close(code);
}

/** Ends a stream whose handler has not run with gRPC status `code` and `details`, as a trailers-only
 *  response (or a reset alone, if headers were sent), and closes it at once for grpc-js, which then
 *  drops whatever more of the request arrives. The reset that follows is NO_ERROR, sent once the
 *  response is: a CANCEL right behind a response can make the client lose the response (seen with
 *  many streams refused at once: RST_STREAM CANCEL and no status). A client that goes on sending
 *  gets its data read and dropped until its request ends. */
export function refuseStream(st: Http2Stream, code: number, details: string): void {
  if (st.closed || st.destroyed) return;
  const server = st as ServerHttp2Stream;
  if (server.headersSent) {
    st.close(constants.NGHTTP2_CANCEL);
    return;
  }
  server.respond({ ':status': '200', 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeURI(details) }, { endStream: true });
  st.close(constants.NGHTTP2_NO_ERROR);
}

/** Whether a closed stream sent status OK and ended cleanly: not when the client went away first,
 *  nor when grpc-js failed to send the response. */
export function deliveredOk(h2: Http2Stream): boolean {
  // A response with no message (an empty GetPrefix) carries its status in the headers alone
  // ("trailers-only"), so the status is in sentHeaders then.
  const status = (h2.sentTrailers ?? h2.sentHeaders)?.['grpc-status'];
  return h2.rstCode === constants.NGHTTP2_NO_ERROR && String(status) === '0';
}

type WriteCb = (err?: Error | null) => void;

/**
 * Makes the call's stream take a write larger than `sliceBytes` one slice at a time, each handed on
 * when the previous one is (HTTP/2 flow control: as the client reads), calling `onSlice` for each.
 * A write's own callback fires only once all of it is handed on, so a client that reads one large
 * message slowly would otherwise show no progress until its end. Writes and end() keep their order.
 * False if the stream is not found.
 */
export function sliceWrites(call: object, sliceBytes: number, onSlice: () => void): boolean {
  const h2 = h2StreamOf(call);
  if (!h2) return false;
  const write = h2.write.bind(h2) as (chunk: unknown, ...rest: unknown[]) => boolean;
  const end = h2.end.bind(h2) as (...args: unknown[]) => Http2Stream;
  const queue: Array<() => void> = []; // writes and end() made while a sliced write is under way
  let busy = false;
  const next = () => { busy = false; queue.shift()?.(); };
  const sliced = (buf: Buffer, cb: WriteCb) => {
    busy = true;
    let at = 0;
    const step = (err?: Error | null) => {
      if (at > 0 && !err) onSlice();
      if (err || at >= buf.length) { cb(err); next(); return; }
      const slice = buf.subarray(at, at + sliceBytes);
      at += slice.length;
      write(slice, step);
    };
    step();
  };
  h2.write = ((chunk: unknown, a?: unknown, b?: unknown) => {
    if (!busy && (!Buffer.isBuffer(chunk) || chunk.length <= sliceBytes)) return write(chunk, a, b);
    const cb = (typeof a === 'function' ? a : typeof b === 'function' ? b : () => undefined) as WriteCb;
    queue.push(() => sliced(chunk as Buffer, cb));
    if (!busy) next();
    return !h2.writableNeedDrain;
  }) as typeof h2.write;
  h2.end = ((...args: unknown[]) => {
    if (!busy) return end(...args);
    queue.push(() => { end(...args); next(); });
    return h2;
  }) as typeof h2.end;
  return true;
}
