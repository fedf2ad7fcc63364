/** Ports for the processes a test starts: see common/net/free-ports.ts for why not `listen(0)`. */
export { freePort, freePorts } from '../../common/net/free-ports.js';
