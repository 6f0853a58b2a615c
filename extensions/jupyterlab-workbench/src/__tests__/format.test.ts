/** The sidebar's status lines (src/format.ts): what a stage shows under its name. */
import { describe, expect, it } from 'vitest';

import { headlineLines, runMessage, shortValue, statusClass } from '../format';
import { StageRun, StageSummary } from '../types';

function run(overrides: Partial<StageRun>): StageRun {
  return {
    run_id: 'r1',
    stage: 'train',
    project: 'demo',
    status: 'running',
    notebook: '03_train.ipynb',
    error: '',
    failed_cell: null,
    progress: [],
    outputs: {},
    ...overrides
  };
}

describe('shortValue', () => {
  it('keeps a string of up to 28 characters as it is', () => {
    expect(shortValue('abc')).toBe('abc');
    expect(shortValue('x'.repeat(28))).toBe('x'.repeat(28));
  });

  it('cuts a longer string to its first and last 12 characters around an ellipsis', () => {
    const digest = 'sha256:0123456789abcdef0123456789abcdef';
    expect(shortValue(digest)).toBe('sha256:01234…456789abcdef');
    expect(shortValue('y'.repeat(29))).toHaveLength(25);
  });

  it('writes other values as JSON, and nothing for undefined', () => {
    expect(shortValue(42)).toBe('42');
    expect(shortValue(null)).toBe('null');
    expect(shortValue({ rows: 3 })).toBe('{"rows":3}');
    expect(shortValue([1, 2])).toBe('[1,2]');
    expect(shortValue(undefined)).toBe('');
  });
});

describe('headlineLines', () => {
  it('gives one "key: value" line per headline output, in order', () => {
    const summary: StageSummary = {
      stage: 'data',
      title: 'Data',
      notebook: '01_data.ipynb',
      status: 'done',
      recorded_at: '2026-01-01T00:00:00Z',
      outputs: { ignored: 1 },
      headline: { dataset_version: 'sha256:0123456789abcdef0123456789abcdef', rows: 1000 },
      record_id: 'rec',
      active_run: null
    };
    expect(headlineLines(summary)).toEqual([
      'dataset_version: sha256:01234…456789abcdef',
      'rows: 1000'
    ]);
  });

  it('gives no line when the stage has no headline', () => {
    const summary = { headline: {} } as StageSummary;
    expect(headlineLines(summary)).toEqual([]);
  });
});

describe('statusClass', () => {
  it.each([
    ['done', 'jp-WorkbenchStatus-ok'],
    ['succeeded', 'jp-WorkbenchStatus-ok'],
    ['running', 'jp-WorkbenchStatus-busy'],
    ['queued', 'jp-WorkbenchStatus-busy'],
    ['failed', 'jp-WorkbenchStatus-failed'],
    ['never run', 'jp-WorkbenchStatus-none'],
    ['', 'jp-WorkbenchStatus-none']
  ])('maps %j to %s', (status, expected) => {
    expect(statusClass(status)).toBe(expected);
  });
});

describe('runMessage', () => {
  it('names the failed cell and its exception', () => {
    const failed = run({
      status: 'failed',
      error: 'the notebook failed',
      failed_cell: { index: 4, source: '1/0', ename: 'ZeroDivisionError', evalue: 'division by zero', traceback: '' }
    });
    expect(runMessage(failed)).toBe('failed in cell 4: ZeroDivisionError: division by zero');
  });

  it('falls back to the run error when no cell failed', () => {
    expect(runMessage(run({ status: 'failed', error: 'kernel died' }))).toBe('failed: kernel died');
  });

  it('says done for a run that succeeded, whatever its progress', () => {
    expect(runMessage(run({ status: 'succeeded', progress: ['cell 9/9'] }))).toBe('done');
  });

  it('shows the last progress line of a running run, or its bare status', () => {
    expect(runMessage(run({ status: 'running', progress: ['cell 1/9', 'cell 2/9'] }))).toBe('running: cell 2/9');
    expect(runMessage(run({ status: 'queued' }))).toBe('queued');
  });
});
