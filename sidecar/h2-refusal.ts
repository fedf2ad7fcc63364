/**
 * How a Skein inbound tells an HTTP/2 (gRPC) caller that it refused the caller's certificate:
 * a GOAWAY naming stream 0 as the last it took, its opaque debug data the marker and the
 * reason label (`untrusted-certificate`...), the HTTP/2 form of the mux's GOAWAY with REFUSED
 * (mux/frames.ts). Why: under TLS 1.3 the caller's handshake is over before the server has
 * judged its certificate and node's TLS server sends no alert for it, so a bare close would
 * leave the caller with a session that died without a reason.
 *
 * The label alone, never the detail: the caller is not trusted (a TLS alert says no more).
 * The code is NO_ERROR, not INADEQUATE_SECURITY: a sidecar that does not know the marker
 * takes it for a peer shutting down with nothing processed, so node refuses its streams
 * (REFUSED_STREAM) and its calls still fail as never sent; with an error code node destroys
 * the session and they would fail as resets.
 *
 * The caller honours the marker only with last stream 0: the peer says it processed no
 * stream of the session, which HTTP/2 itself lets a client send again (RFC 9113 §6.8), so
 * believing it cannot replay a call that reached an app. Like the mux's flag it is taken on
 * trust otherwise: only a server that passed the caller's SPIFFE check can send it.
 */

const MARKER = 'skein-certificate-refused:';
/** What a label may be: the refusing side's reason labels (authz/peer.ts), nothing to put in a header unchecked. */
const LABEL = /^[a-z][a-z0-9-]{0,63}$/;

/** The GOAWAY debug data that refuses a caller's certificate for the reason `label`. */
export function refusalGoAwayData(label: string): Buffer {
  return Buffer.from(MARKER + label, 'latin1');
}

const FRAME_HEADER = 9;
const SETTINGS = 0x4;
const GOAWAY = 0x7;

/**
 * All the refusing side sends, written raw on the TLS socket before it reads a byte: the
 * server's connection preface (an empty SETTINGS, RFC 9113 §3.4), then the GOAWAY (last
 * stream 0, NO_ERROR). No HTTP/2 session is made for it: it needs none to say no, takes no
 * stream, and one that has sent its GOAWAY stops reading, so it would not see the caller
 * close and would hold the connection until a timer; this way the socket is read and dropped
 * until the caller closes it, as a refused mux connection is (listeners.ts).
 */
export function refusalFrames(label: string): Buffer {
  const data = refusalGoAwayData(label);
  const out = Buffer.alloc(FRAME_HEADER * 2 + 8 + data.length);
  out[3] = SETTINGS;
  out.writeUIntBE(8 + data.length, FRAME_HEADER, 3);
  out[FRAME_HEADER + 3] = GOAWAY;
  // Flags, stream id, last stream id and error code are all 0.
  data.copy(out, FRAME_HEADER * 2 + 8);
  return out;
}

/** The reason label of a GOAWAY that refuses this sidecar's certificate (see above), or undefined for any other GOAWAY. */
export function refusalLabel(lastStreamID: number, opaqueData: Buffer | undefined): string | undefined {
  if (lastStreamID !== 0 || opaqueData === undefined) return undefined;
  const text = opaqueData.toString('latin1');
  if (!text.startsWith(MARKER)) return undefined;
  const label = text.slice(MARKER.length);
  return LABEL.test(label) ? label : undefined;
}
