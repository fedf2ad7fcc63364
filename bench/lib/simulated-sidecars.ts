/**
 * Child process for the control-plane benchmark: opens COUNT push streams to the control
 * plane, each on its own TLS connection like a real sidecar, announcing instances of
 * as many services as it is given tokens (versions v1 and v2 alternating), and ACKs every snapshot the moment it
 * arrives, without parsing it, so the figures measure the control plane, not this process.
 * Prints `ready` once every stream has ACKed its first snapshot, and `acked VERSION` once
 * every stream has ACKed VERSION (so the benchmark need not poll the control plane).
 *
 *   node simulated-sidecars.js HOST:PORT CA_FILE FIRST COUNT TOKEN_OF_SVC-0,TOKEN_OF_SVC-1,...
 *
 * simulates sidecars number FIRST to FIRST+COUNT-1 (several processes share a fleet).
 */
import * as grpc from '@grpc/grpc-js';
import { loadMeshProto, type ControlMessage, type SidecarMessage } from '../../common/proto/mesh.js';
import { controlPlaneTls } from '../../sidecar/control-plane/channel.js';

const [address, caFile, firstText, countText, tokensText] = process.argv.slice(2);
const first = Number(firstText);
const count = Number(countText);
const tokens = tokensText!.split(',');
const services = tokens.length;
const { Client } = loadMeshProto();
// As a real sidecar connects: no IP as the TLS server name.
const tls = await controlPlaneTls(address!, caFile!);
let firstAcks = 0;
const acks = new Map<string, number>();

function open(i: number): void {
  // A local subchannel pool gives every simulated sidecar its own connection.
  const client = new Client(address!, tls.credentials, { ...tls.channelOptions, 'grpc.use_local_subchannel_pool': 1, 'grpc.keepalive_time_ms': 10_000 });
  const stream: grpc.ClientDuplexStream<SidecarMessage, ControlMessage> = client.Stream();
  let acked = false;
  stream.on('data', (message: ControlMessage) => {
    if (message.msg !== 'snapshot') return;
    const version = message.snapshot!.version;
    stream.write({ ack: { version } });
    const n = (acks.get(version) ?? 0) + 1;
    acks.set(version, n);
    if (n === count) {
      acks.delete(version);
      process.stdout.write(`acked ${version}\n`);
    }
    if (!acked) {
      acked = true;
      if (++firstAcks === count) process.stdout.write('ready\n');
    }
  });
  stream.on('error', (err: Error) => {
    process.stderr.write(`stream ${i}: ${err.message}\n`);
    process.exit(1);
  });
  stream.write({
    hello: {
      service: `svc-${i % services}`,
      instanceId: `sim-${i}`,
      version: Math.floor(i / services) % 2 === 0 ? 'v1' : 'v2',
      address: '127.0.0.1',
      inboundPort: 20_000 + i,
      adminPort: 0,
      protocol: 'http',
      token: tokens[i % services]!,
      lastVersion: '',
      certExpiryUnix: '0',
      labels: {},
    },
  });
}

// Connect in small waves so the start-up burst resembles a fleet rolling out, not a SYN flood.
for (let i = first; i < first + count; i++) {
  open(i);
  if (i % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 20));
}
