/**
 * Sidecar mux frames (sidecar/mux/frames.ts) made and read by hand, for tests of what a peer
 * holding a mesh certificate can send that a Skein sidecar never would.
 */
import type { Socket } from 'node:net';

/** One frame: the 10-byte header (length, type, flags, stream id), then `payload` as latin1. */
export function muxFrame(type: number, flags: number, id: number, payload: string): Buffer {
  const body = Buffer.from(payload, 'latin1');
  const header = Buffer.alloc(10);
  header.writeUInt32BE(body.length, 0);
  header[4] = type;
  header[5] = flags;
  header.writeUInt32BE(id, 6);
  return Buffer.concat([header, body]);
}

/** Calls `onFrame` for each whole frame read off `socket`, its payload as latin1. */
export function readMuxFrames(socket: Socket, onFrame: (type: number, flags: number, id: number, payload: string) => void): void {
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 10 && pending.length >= 10 + pending.readUInt32BE(0)) {
      const end = 10 + pending.readUInt32BE(0);
      onFrame(pending[4]!, pending[5]!, pending.readUInt32BE(6), pending.toString('latin1', 10, end));
      pending = pending.subarray(end);
    }
  });
}
