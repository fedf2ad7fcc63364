/**
 * The CLI's client of the control plane's admin API: finds it with `--control-plane URL`
 * or SKEIN_ADMIN_URL (default http://127.0.0.1:15080), authenticates with
 * SKEIN_ADMIN_TOKEN, and turns error bodies into AdminApiError with the server's message.
 */
export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:15080';

export class AdminApiError extends Error {
  override name = 'AdminApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly problems: readonly string[] = [],
  ) {
    super(message);
  }
}

export interface AdminResponse<T> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: T;
}

export interface RequestOptions {
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

export class AdminClient {
  readonly baseUrl: string;

  constructor(
    baseUrl: string = DEFAULT_ADMIN_URL,
    private readonly token?: string,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  static fromEnv(url: string | undefined, env: NodeJS.ProcessEnv = process.env): AdminClient {
    return new AdminClient(url ?? env.SKEIN_ADMIN_URL ?? DEFAULT_ADMIN_URL, env.SKEIN_ADMIN_TOKEN || undefined);
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<AdminResponse<T>> {
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new AdminApiError(0, 'unreachable', `cannot reach the control plane at ${this.baseUrl}: ${cause?.code ?? cause?.message ?? (err as Error).message} (set --control-plane or SKEIN_ADMIN_URL)`);
    }
    const text = await res.text();
    let body: unknown = undefined;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    if (!res.ok) {
      const error = (body as { error?: { code?: string; message?: string; problems?: string[] } } | undefined)?.error;
      let message = error?.message ?? `HTTP ${res.status}`;
      if (res.status === 401 && !this.token) message += ' (SKEIN_ADMIN_TOKEN is not set)';
      throw new AdminApiError(res.status, error?.code ?? 'http', message, error?.problems ?? []);
    }
    return { status: res.status, headers: res.headers, body: body as T };
  }

  get<T>(path: string): Promise<AdminResponse<T>> {
    return this.request<T>('GET', path);
  }

  put<T>(path: string, body: unknown, headers?: Record<string, string>): Promise<AdminResponse<T>> {
    return this.request<T>('PUT', path, { body, headers });
  }

  post<T>(path: string, body: unknown): Promise<AdminResponse<T>> {
    return this.request<T>('POST', path, { body });
  }

  delete(path: string): Promise<AdminResponse<unknown>> {
    return this.request('DELETE', path);
  }
}
