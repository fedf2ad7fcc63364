/**
 * The mutating admission webhook as a pure function: an AdmissionReview v1 request in, the
 * AdmissionReview response out, with the same change `skein inject` makes as a base64
 * JSONPatch. Objects that need no change (opted out, already injected, other operations)
 * are allowed with no patch; an object that cannot be injected (no service name, no app
 * port, host network) is refused with the same message the CLI prints, so a meshed
 * namespace never runs a pod silently without its sidecar.
 */
import fastJsonPatch from 'fast-json-patch';
import { InjectError } from './errors.js';
import type { InjectOptions } from './options.js';
import { isObj } from './pod.js';
import { applyOutcomes, injectObject } from './workloads.js';

const { compare } = fastJsonPatch;

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: 'JSONPatch';
  readonly patch?: string;
  readonly status?: { readonly code: number; readonly message: string };
}

export interface AdmissionReviewResponse {
  readonly apiVersion: typeof ADMISSION_API_VERSION;
  readonly kind: 'AdmissionReview';
  readonly response: AdmissionResponse;
}

/** The request is not an AdmissionReview v1 we can answer (the HTTP layer answers 400). */
export class AdmissionReviewError extends Error {
  override name = 'AdmissionReviewError';
}

/** e.g. `Pod shop/orders-7d9c5b8f6c-*` (a ReplicaSet's pods have only a generateName at admission). */
function describeObject(request: Record<string, unknown>): string {
  const obj = request.object as Record<string, unknown>;
  const meta = isObj(obj.metadata) ? obj.metadata : {};
  const name = typeof meta.name === 'string' && meta.name ? meta.name : `${typeof meta.generateName === 'string' ? meta.generateName : ''}*`;
  const namespace = typeof request.namespace === 'string' ? `${request.namespace}/` : '';
  return `${typeof obj.kind === 'string' ? obj.kind : 'object'} ${namespace}${name}`;
}

export function reviewAdmission(review: unknown, options: InjectOptions): AdmissionReviewResponse {
  if (!isObj(review) || review.kind !== 'AdmissionReview' || review.apiVersion !== ADMISSION_API_VERSION) {
    throw new AdmissionReviewError(`expected an AdmissionReview of apiVersion ${ADMISSION_API_VERSION}`);
  }
  const request = review.request;
  if (!isObj(request) || typeof request.uid !== 'string' || !request.uid) throw new AdmissionReviewError('request.uid is required');
  const answer = (response: Omit<AdmissionResponse, 'uid'>): AdmissionReviewResponse => ({
    apiVersion: ADMISSION_API_VERSION,
    kind: 'AdmissionReview',
    response: { uid: request.uid as string, ...response },
  });
  if (request.operation !== 'CREATE' || !isObj(request.object)) return answer({ allowed: true });

  try {
    const outcomes = injectObject(request.object, describeObject(request), options);
    const patch = compare(request.object, applyOutcomes(request.object, outcomes) as object);
    if (patch.length === 0) return answer({ allowed: true });
    return answer({ allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') });
  } catch (err) {
    if (!(err instanceof InjectError)) throw err;
    return answer({ allowed: false, status: { code: 422, message: `skein injection: ${err.message}` } });
  }
}
