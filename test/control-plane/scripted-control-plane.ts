/**
 * A control plane whose snapshots the test writes: the real CA, TLS and Sign handler of
 * control-plane/ca, and a Stream handler that pushes whatever the test asks (including
 * snapshots the real control plane would never produce) and records ACKs and NACKs.
 * Bootstrap tokens are `svc:<service>`.
 */
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '../../common/log.js';
import { loadMeshProto, type ControlMessage, type Hello, type SidecarMessage } from '../../common/proto/mesh.js';
import { CertificateAuthority } from '../../control-plane/ca/authority.js';
import { ControlPlaneTls } from '../../control-plane/ca/server-tls.js';
import { createSignHandler } from '../../control-plane/ca/sign-service.js';
import { tempDir } from '../support/index.js';

type Call = grpc.ServerDuplexStream<SidecarMessage, ControlMessage>;

export class ScriptedControlPlane {
  readonly hellos: Hello[] = [];
  readonly acks: { service: string; version: string }[] = [];
  readonly nacks: { service: string; version: string; reason: string }[] = [];
  private readonly calls = new Map<Call, Hello>();
  private last: { version: string; json: string } | undefined;

  private constructor(
    private readonly server: grpc.Server,
    private readonly tls: ControlPlaneTls,
    readonly grpcAddress: string,
    readonly caFile: string,
  ) {}

  /** `onHello` gives the snapshot to push after each Hello (e.g. with the new endpoint). */
  static async start(onHello: (cp: ScriptedControlPlane) => void): Promise<ScriptedControlPlane> {
    const logger = createLogger('scripted-control-plane', 'silent');
    const ca = await CertificateAuthority.open({ dataDir: tempDir('skein-scripted-cp-'), trustDomain: 'skein.local' });
    const tls = await ControlPlaneTls.create(ca, logger);
    const server = new grpc.Server();
    let cp: ScriptedControlPlane | undefined;
    server.addService(loadMeshProto().service, {
      Sign: createSignHandler({ ca, logger, verifyToken: async (token) => token.replace(/^svc:/, '') }),
      Stream: (call: Call) => {
        call.on('data', (message: SidecarMessage) => {
          const hello = cp!.calls.get(call);
          if (message.msg === 'hello') {
            cp!.calls.set(call, message.hello!);
            cp!.hellos.push(message.hello!);
            onHello(cp!);
          } else if (message.msg === 'ack' && hello) cp!.acks.push({ service: hello.service, version: message.ack!.version });
          else if (message.msg === 'nack' && hello) cp!.nacks.push({ service: hello.service, ...message.nack! });
        });
        call.on('end', () => call.end());
        call.on('close', () => cp!.calls.delete(call));
        call.on('error', () => cp!.calls.delete(call));
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', tls.credentials, (err, p) => (err ? reject(err) : resolve(p))));
    cp = new ScriptedControlPlane(server, tls, `127.0.0.1:${port}`, ca.bundlePath);
    return cp;
  }

  /** Pushes a snapshot to every connected sidecar. */
  push(version: string, snapshot: unknown): void {
    this.last = { version, json: JSON.stringify({ ...(snapshot as object), version }) };
    for (const call of this.calls.keys()) call.write({ snapshot: this.last });
  }

  /** Stops reading what the connected sidecars send (HTTP/2 flow control then holds their writes back), or reads again. */
  pauseReading(paused = true): void {
    for (const call of this.calls.keys()) {
      if (paused) call.pause();
      else call.resume();
    }
  }

  async close(): Promise<void> {
    for (const call of this.calls.keys()) call.end();
    this.server.forceShutdown();
    this.tls.close();
  }
}
