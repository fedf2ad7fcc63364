/** The admin API error a request was expected to end with (its status, code, message and problems). */
import { AdminApiError } from '../../cli/admin-client.js';

export async function apiError(request: Promise<unknown>): Promise<AdminApiError> {
  try {
    await request;
  } catch (err) {
    if (err instanceof AdminApiError) return err;
    throw err;
  }
  throw new Error('expected the request to fail');
}
