/**
 * What an upgrading client sends past its request while the sidecar waits (its route's fault
 * delay, the endpoint's answer, a declined answer's body): it may reach the endpoint only after
 * a 101, so it is held here until then (and dropped without one). It is read off the socket rather than left in it: a paused socket keeps what
 * it read in its buffer with the client's FIN queued behind it, so a client that sent a byte and
 * left showed neither 'end' nor 'close' until something read again (a tunnel at the endpoint's
 * 101, or nothing at all), and its exchange, breaker place and endpoint connection stayed.
 *
 * Past MAX_EARLY_BYTES the client is paused again: what more it sends waits in TCP's buffers,
 * not in this process, and such a client's leaving is seen only at the wait's end.
 */
import type { Socket } from 'node:net';

const MAX_EARLY_BYTES = 64 * 1024;

// One listener for every socket (not a closure per upgrade); the holder hangs off the socket.
const HOLDER = Symbol('skein.early-bytes');
type WithHolder = { [HOLDER]?: EarlyBytes };

function onEarlyData(this: Socket, chunk: Buffer): void {
  (this as WithHolder)[HOLDER]!.add(chunk);
}

export class EarlyBytes {
  private chunks: Buffer[] = [];
  private bytes = 0;

  /** Starts reading `client` (paused, as the HTTP/1.1 server hands it over); `head` is what was read past the request already. */
  constructor(
    private readonly client: Socket,
    head: Buffer,
  ) {
    if (head.length > 0) this.add(head);
    (client as WithHolder)[HOLDER] = this;
    client.on('data', onEarlyData);
    // A head at the bound already (a fault delay's holder handing over to the splice's) reads no more.
    if (this.bytes < MAX_EARLY_BYTES) client.resume();
  }

  add(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes >= MAX_EARLY_BYTES) this.client.pause();
  }

  /** The wait is over: the client is paused again, for whoever reads it next, and what it sent meanwhile is returned (once). */
  stop(): Buffer {
    const client = this.client;
    client.off('data', onEarlyData);
    (client as WithHolder)[HOLDER] = undefined;
    client.pause();
    const held = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    this.bytes = 0;
    return held;
  }
}
