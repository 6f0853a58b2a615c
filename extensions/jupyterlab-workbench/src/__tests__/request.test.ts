/**
 * requestAPI / postAPI (src/request.ts) with JupyterLab's real ServerConnection: only `fetch` is replaced,
 * so the URL, the token header and the error an answer turns into are what the page would send and show.
 */
import { PageConfig } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { APIError, postAPI, requestAPI } from '../request';

const BASE = 'http://127.0.0.1:8888/lab-base/';

/** Answers every request with `body` and `status`, and keeps the requests it got. */
function answer(body: string, status = 200, statusText = 'OK'): Request[] {
  const seen: Request[] = [];
  vi.stubGlobal('fetch', (request: Request) => {
    seen.push(request);
    return Promise.resolve(new Response(body, { status, statusText }));
  });
  return seen;
}

beforeAll(() => {
  PageConfig.setOption('baseUrl', BASE);
  PageConfig.setOption('token', 'secret-token');
});

afterAll(() => {
  PageConfig.setOption('baseUrl', '');
  PageConfig.setOption('token', '');
});

describe('requestAPI', () => {
  it("reaches <base_url>/workbench/api/<endpoint> with the query and the page's token", async () => {
    const seen = answer('{"stages": ["data", "train"]}');
    const reply = await requestAPI<{ stages: string[] }>('stages', {}, { project: 'my project', n: '2' });
    expect(reply).toEqual({ stages: ['data', 'train'] });
    expect(seen).toHaveLength(1);
    const url = new URL(seen[0].url);
    expect(`${url.origin}${url.pathname}`).toBe(`${BASE}workbench/api/stages`);
    expect(url.searchParams.get('project')).toBe('my project');
    expect(url.searchParams.get('n')).toBe('2');
    expect(seen[0].method).toBe('GET');
    expect(seen[0].headers.get('Authorization')).toBe('token secret-token');
  });

  it('joins a nested endpoint and answers {} for an empty body', async () => {
    const seen = answer('');
    expect(await requestAPI('jobs/raysubmit_1/logs')).toEqual({});
    expect(new URL(seen[0].url).pathname).toBe('/lab-base/workbench/api/jobs/raysubmit_1/logs');
  });

  it("turns an error answer into an APIError with the server's message and status", async () => {
    answer('{"error": "no stage named \'deploy\'"}', 404, 'Not Found');
    const error = await requestAPI('stages/deploy').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).message).toBe("no stage named 'deploy'");
    expect((error as APIError).status).toBe(404);
  });

  it("uses the workbench's error, else Tornado's message, else the body text, else the status text", async () => {
    answer('{"error": "stage is running", "message": "Conflict"}', 409, 'Conflict');
    await expect(requestAPI('stages')).rejects.toMatchObject({ message: 'stage is running', status: 409 });
    answer('{"message": "Forbidden by the XSRF check"}', 403, 'Forbidden');
    await expect(requestAPI('stages')).rejects.toMatchObject({ message: 'Forbidden by the XSRF check', status: 403 });
    answer('<html>Bad Gateway</html>', 502, 'Bad Gateway');
    await expect(requestAPI('stages')).rejects.toMatchObject({ message: '<html>Bad Gateway</html>', status: 502 });
    answer('', 500, 'Internal Server Error');
    await expect(requestAPI('stages')).rejects.toMatchObject({ message: 'Internal Server Error', status: 500 });
  });

  it('gives the body text of a success that is not JSON as its error field', async () => {
    answer('plain text');
    expect(await requestAPI('version')).toEqual({ error: 'plain text' });
  });

  it('turns a failed connection into a ServerConnection.NetworkError', async () => {
    vi.stubGlobal('fetch', () => Promise.reject(new TypeError('Failed to fetch')));
    const error = await requestAPI('stages').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServerConnection.NetworkError);
    expect((error as Error).message).toBe('Failed to fetch');
  });
});

describe('postAPI', () => {
  it('POSTs the body as JSON', async () => {
    const seen = answer('{"run_id": "r1"}', 202, 'Accepted');
    expect(await postAPI('stages/train/run', { project: 'demo', params: { epochs: 3 } })).toEqual({ run_id: 'r1' });
    expect(seen[0].method).toBe('POST');
    expect(new URL(seen[0].url).pathname).toBe('/lab-base/workbench/api/stages/train/run');
    expect(JSON.parse(await seen[0].text())).toEqual({ project: 'demo', params: { epochs: 3 } });
  });
});
