/**
 * Test support for end-to-end tests with real processes (import from 'test/support/index.js'):
 *
 * - `freePorts(n)` / `freePort()`: free TCP ports on 127.0.0.1 from the OS.
 * - `startUpstream(handler?)`: an HTTP server on port 0 recording its requests;
 *   `echoHandler(name)` answers JSON naming the server, method, path and headers.
 * - `writeTempConfig(snapshot)` / `writeConfigFile(path, snapshot)`: a static snapshot file
 *   (atomic write, so a watching sidecar never sees half a file); `tempDir()`.
 * - `new Processes()`: spawns `node bin/skein.js ...` from the built dist/ (build first with
 *   `npx tsc -p .`), captures stdout+stderr (`child.output()`), and `killAll()` in afterEach.
 *   `procs.sidecar({ service, appPort, config, identity?, upstreams? })` allocates inbound,
 *   outbound and admin ports and resolves once admin `/ready` (or `/live`) answers 200.
 * - `makeCa()`, `makeLeaf(ca, service, { notAfter?, spiffeId? })`, `writeIdentity(dir, name, leaf)`:
 *   real certificates with `spiffe://skein.local/service/<name>` URI SANs (node-forge), and
 *   the three PEM files for --cert-file/--key-file/--ca-file.
 * - `waitUntil(check, { timeoutMs })`: poll with a deadline instead of sleeping.
 * - `clientHello()`, `abandonHandshake(port, 'close' | 'reset', hello?)`: a caller that gives up
 *   a TLS handshake before sending anything, or after the server answered its ClientHello.
 * - `SPEC_METRICS`: the metric names of SPEC §7.
 * - `startScriptedConsulAgent()`: an HTTP server answering a sidecar's Consul calls on cue
 *   (e.g. holding the deregistration), where a real agent cannot be made to.
 * - `ManualEndpointSource`: an endpoint source a unit test feeds by hand, counting watches.
 */
export * from './ports.js';
export * from './upstream.js';
export * from './config.js';
export * from './processes.js';
export * from './certs.js';
export * from './wait.js';
export * from './spec-metrics.js';
export * from './scripted-consul-agent.js';
export * from './manual-endpoint-source.js';
export * from './api-error.js';
export * from './client-hello.js';
