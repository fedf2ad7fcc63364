/**
 * An endpoint at one of this sidecar's own outbound listeners (a port typo in a config, or
 * discovery listing the outbound port) sends every request back into the sidecar as a new
 * outbound request, which goes there again: measured, one request became about a thousand
 * before the circuit breaker opened, and it did again at every reset. Such an endpoint gets
 * a pool that refuses each call as a connect failure naming the loop (linkerd-proxy refuses
 * connections to its own listeners the same way): nothing is sent, retries go to the other
 * endpoints, and the caller's 503 says why.
 *
 * Only loopback addresses are compared: the outbound listeners bind 127.0.0.1.
 */
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { codedError, UpstreamDispatcher, type AnyHandler } from './upstream-dispatcher.js';
import type { PoolFactory } from './upstream-endpoint.js';
import { isLoopbackHost, isUnspecifiedHost } from '../../common/net/loopback.js';

/** The code of a call refused because its endpoint is this sidecar (a connect failure: nothing was sent). */
export const SELF_LOOP = 'ERR_SKEIN_SELF_LOOP';

function isLoopback(address: string): boolean {
  // 0.0.0.0 and :: reach the local host when connected to.
  return isLoopbackHost(address) || isUnspecifiedHost(address);
}

/** Refuses every call with the same error. */
class RefusingUpstream extends UpstreamDispatcher {
  constructor(private readonly message: string) {
    super();
  }

  override dispatch(_opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    (handler as unknown as AnyHandler).onError(codedError(SELF_LOOP, this.message));
    return true;
  }

  protected shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * `factory`, except that an endpoint on one of `ownPorts` at a loopback address gets a refusing
 * pool (logged once, when made). The set is read per pool made, so ports bound later (port 0)
 * count once the caller adds them.
 */
export function refuseOwnListeners(factory: PoolFactory, ownPorts: ReadonlySet<number>, logger: Logger): PoolFactory {
  return (service, address, port, protocol) => {
    if (!ownPorts.has(port) || !isLoopback(address)) return factory(service, address, port, protocol);
    const message = `endpoint ${address}:${port} of ${service} is this sidecar's own outbound listener: requests sent there would loop back into it, so none are`;
    logger.error({ destination: service, endpoint: `${address}:${port}` }, message);
    return new RefusingUpstream(message);
  };
}
