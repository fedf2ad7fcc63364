/**
 * How a peer sidecar marks an HTTP/2 (gRPC) answer as its own, the HTTP/2 form of the mux's
 * SIDECAR_MADE flag (mux/frames.ts). A caller replays a POST, every gRPC call among them, only
 * on its peer's own `upstream-connect-failure`, and an app may send any header, that
 * `x-skein-reason` included (a gateway relaying another sidecar's answer). HTTP/2 has no frame
 * bit to spare, so the mark is a header whose value only the two ends of the TLS connection
 * can know: a token both derive from it with the TLS exporter (RFC 5705, RFC 8446 §7.5). An
 * app cannot: its own connection to a sidecar is another one, and its answer's header of that
 * name is dropped by its sidecar (stages/headers.ts), as the caller drops the real one before
 * the answer goes on to its own caller.
 *
 * Only TLS sessions have a token, and they join sidecars alone: a sidecar opens TLS only to a
 * peer with a mesh certificate (main.ts; its app is spoken to over h2c) and its inbound takes
 * TLS only from one (listeners.ts), so the token is taken on the trust the mux's flag is.
 * Each end computes it once per session, when it first needs it: an answer that is not
 * marked costs the caller one header lookup, and the inbound nothing.
 *
 * Mixed versions: a sidecar before 2026-12-07 never sends the mark, and its answers are not
 * believed (a call its app never got is not replayed, the safe side); as a caller it ignores
 * the header and hands it to its app, where it means nothing (no other connection has that token).
 */
import type { Http2Session, IncomingHttpHeaders } from 'node:http2';
import type { TLSSocket } from 'node:tls';

export const SIDECAR_MADE_HEADER = 'x-skein-sidecar-made';
// RFC 5705 §4: a label not in IANA's registry begins with EXPERIMENTAL.
const EXPORTER_LABEL = 'EXPERIMENTAL-skein-sidecar-made';
const TOKEN_BYTES = 16;
/** The exporter's context: none is needed beyond the label, and both ends pass the same. */
const CONTEXT = Buffer.alloc(0);

const TOKEN = Symbol('skein.sidecarMadeToken');
/** The session's token; null for a session that has none. */
type WithToken = { [TOKEN]?: string | null };

/** The token of `session`'s TLS connection (base64url), the same at both ends; undefined for a session without TLS or one already gone. */
export function sessionToken(session: Http2Session | undefined): string | undefined {
  if (session === undefined) return undefined;
  let token = (session as WithToken)[TOKEN];
  if (token === undefined) {
    token = exportToken(session);
    (session as WithToken)[TOKEN] = token;
  }
  return token ?? undefined;
}

function exportToken(session: Http2Session): string | null {
  // node's session.socket throws once the session has let its socket go, and the exporter once the TLS connection is torn down.
  try {
    const socket = session.socket as Partial<TLSSocket>;
    return socket.exportKeyingMaterial?.(TOKEN_BYTES, EXPORTER_LABEL, CONTEXT).toString('base64url') ?? null;
  } catch {
    return null;
  }
}

/** The answer whose head is `headers`, on `session`, was made by the peer sidecar itself: it carries the session's token. */
export function madeByPeerSidecar(session: Http2Session, headers: IncomingHttpHeaders): boolean {
  const mark = headers[SIDECAR_MADE_HEADER];
  return mark !== undefined && mark === sessionToken(session);
}
