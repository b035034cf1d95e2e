/**
 * HTTP to an API listening on a real port, as a client sends it: JSON bodies, an admin's token unless the call gives
 * its own headers (so that a test tests its route, not access).
 */
import { asAdmin } from './identity';

export interface ApiAnswer {
  status: number;
  headers: Headers;
  contentType: string;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

export type ApiClient = (
  method: string,
  path: string,
  body?: unknown,
  headers?: Record<string, string>,
) => Promise<ApiAnswer>;

export function apiClient(baseUrl: () => string): ApiClient {
  return async (method, path, body, headers = {}) => {
    const res = await fetch(`${baseUrl()}${path}`, {
      method,
      headers: {
        ...(await asAdmin()),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      contentType: res.headers.get('content-type') ?? '',
      text,
      json: <T>() => JSON.parse(text) as T,
    };
  };
}
