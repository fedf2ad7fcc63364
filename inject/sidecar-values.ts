/**
 * The settings injection writes into the sidecar's environment (SKEIN_SERVICE, SKEIN_VERSION,
 * SKEIN_APP_HEALTH_PATH) are checked here by the rules `skein sidecar` applies to them: a value
 * the sidecar refuses would exit 2 at every start, a crash-looping pod, while injection can
 * still name the document and field the value came from.
 */
import type { ZodType } from 'zod';
import { appHealthPath, serviceName, subsetName } from '../common/config/schema.js';
import { InjectError } from './errors.js';

const RULES = {
  service: { what: 'service name', schema: serviceName },
  version: { what: 'version', schema: subsetName },
  appHealthPath: { what: 'app health path', schema: appHealthPath },
} satisfies Record<string, { what: string; schema: ZodType<string> }>;

/** Throws an InjectError naming `field` when the sidecar would refuse `value`; `hint` is added to the message. */
export function assertSidecarValue(setting: keyof typeof RULES, value: string, document: string, field: string, hint = ''): void {
  const { what, schema } = RULES[setting];
  const result = schema.safeParse(value);
  if (!result.success) throw new InjectError('invalid-field', document, field, `${what} ${JSON.stringify(value)}: ${result.error.issues[0]!.message}${hint}`);
}
