// One gRPC call over a bare HTTP/2 session whose reading the test controls byte by byte: a small
// window, and reading paced to a rate, stopped, or never started. grpc-js clients read whole messages
// and keep large windows, so they cannot show what the server does while one message is in transit.
import * as http2 from 'node:http2';

/** The service's path prefix: `${SERVICE}/Get` is the Get method. */
export const SERVICE = '/lbkv.v1.KeyValueStore';

/** A gRPC length-prefixed message; `compressed` and `declaredLength` make malformed ones. */
export function grpcFrame(msg: Uint8Array, opts: { compressed?: boolean; declaredLength?: number } = {}): Buffer {
  const h = Buffer.alloc(5);
  h[0] = opts.compressed ? 1 : 0;
  h.writeUInt32BE(opts.declaredLength ?? msg.length, 1);
  return Buffer.concat([h, msg]);
}

/** Copies grpc-status and grpc-message from response headers or trailers into `into`, if there. */
export function takeGrpcStatus(h: http2.IncomingHttpHeaders, into: { status?: number; message: string }): void {
  if (h['grpc-status'] !== undefined) into.status = Number(h['grpc-status']);
  if (h['grpc-message'] !== undefined) into.message = decodeURIComponent(String(h['grpc-message']));
}

/** A call of `method` opened on `session`, nothing sent yet: the test writes (or never ends) its
 *  request and reads (or never reads) its response; `got` takes the status from a trailers-only
 *  response or the trailers. Stream errors (the resets the tests provoke) are ignored. */
export function openCall(session: http2.ClientHttp2Session, method: string, headers: http2.OutgoingHttpHeaders = {}): { req: http2.ClientHttp2Stream; got: { status?: number; message: string } } {
  const req = session.request({ ':method': 'POST', ':path': `${SERVICE}/${method}`, 'content-type': 'application/grpc', te: 'trailers', ...headers });
  const got: { status?: number; message: string } = { message: '' };
  req.on('error', () => undefined);
  req.on('response', (h) => takeGrpcStatus(h, got));
  req.on('trailers', (h) => takeGrpcStatus(h, got));
  return { req, got };
}

export interface RawResult {
  /** grpc-status from the trailers (or a trailers-only response); undefined if none arrived. */
  status: number | undefined;
  message: string;
  /** RST_STREAM code the stream closed with (0: closed normally). */
  rstCode: number;
  /** The response messages, unframed. */
  messages: Buffer[];
  bytes: number;
}

export interface RawCall {
  /** Resolves when the stream closes. */
  done: Promise<RawResult>;
  /** Bytes of response data taken so far. */
  readonly bytes: number;
  /** Stops reading (the client keeps the stream open). */
  stopReading(): void;
  /** Reads again, at the call's rate counted from now. */
  resume(): void;
  /** Resets the stream (RST_STREAM CANCEL), as a client that gives up does. */
  cancel(): void;
  destroy(): void;
}

/** Calls `method` with `request` (protobuf bytes). `bytesPerSecond`: read at about that rate
 *  (undefined: as fast as possible; 0: never read). The window is 64 KiB, so the server can send
 *  little ahead of what is read. */
export function rawGrpcCall(address: string, method: string, request: Uint8Array, o: { bytesPerSecond?: number } = {}): RawCall {
  const session = http2.connect(`http://${address}`, { settings: { initialWindowSize: 65535 } });
  session.on('error', () => undefined);
  const req = session.request({ ':method': 'POST', ':path': `${SERVICE}/${method}`, 'content-type': 'application/grpc', te: 'trailers' });
  req.on('error', () => undefined);
  req.end(grpcFrame(request));

  const got: { status?: number; message: string } = { message: '' };
  req.on('response', (h) => takeGrpcStatus(h, got));
  req.on('trailers', (h) => takeGrpcStatus(h, got));

  const chunks: Buffer[] = [];
  let bytes = 0;
  let stopped = o.bytesPerSecond === 0;
  let timer: NodeJS.Timeout | undefined;
  let paceFrom = Date.now(); // the rate counts from here, over the bytes taken since
  let paceBytes = 0;
  if (stopped) req.pause();
  req.on('data', (c: Buffer) => {
    chunks.push(c);
    bytes += c.length;
    if (stopped) { req.pause(); return; }
    if (!o.bytesPerSecond) return;
    const wait = paceFrom + ((bytes - paceBytes) / o.bytesPerSecond) * 1000 - Date.now();
    if (wait > 0) {
      req.pause();
      timer = setTimeout(() => { if (!stopped) req.resume(); }, wait);
    }
  });

  const done = new Promise<RawResult>((resolve) => {
    req.on('close', () => {
      clearTimeout(timer);
      const body = Buffer.concat(chunks);
      const messages: Buffer[] = [];
      for (let at = 0; at + 5 <= body.length;) {
        const len = body.readUInt32BE(at + 1);
        if (at + 5 + len > body.length) break; // a message cut off by a reset
        messages.push(body.subarray(at + 5, at + 5 + len));
        at += 5 + len;
      }
      session.close();
      resolve({ status: got.status, message: got.message, rstCode: req.rstCode ?? 0, messages, bytes });
    });
  });
  return {
    done,
    get bytes() { return bytes; },
    stopReading: () => { stopped = true; clearTimeout(timer); req.pause(); },
    resume: () => { stopped = false; paceFrom = Date.now(); paceBytes = bytes; req.resume(); },
    cancel: () => req.close(http2.constants.NGHTTP2_CANCEL),
    destroy: () => session.destroy(),
  };
}
