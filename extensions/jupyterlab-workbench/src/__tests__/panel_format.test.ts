/** The Jobs, Runs and Deployments panels' pure helpers (src/panel_format.ts). */
import { describe, expect, it } from 'vitest';

import {
  clockTime,
  comparerNotebook,
  dashboardUrl,
  deploymentHealthy,
  duration,
  engineStatusClass,
  formatMetric,
  freeNotebookName,
  isTerminal,
  logTail,
  mainMetric,
  replicaSummary
} from '../panel_format';
import { RunSummary } from '../types';

function runWith(metrics: Record<string, number | null>): RunSummary {
  return { run_id: 'r', run_name: 'n', status: 'FINISHED', start_time: 0, end_time: null, metrics, tags: {} };
}

describe('isTerminal', () => {
  it('is true only for the Ray job states after which nothing changes', () => {
    expect(['SUCCEEDED', 'FAILED', 'STOPPED'].map(isTerminal)).toEqual([true, true, true]);
    expect(['PENDING', 'RUNNING', 'succeeded', ''].map(isTerminal)).toEqual([false, false, false, false]);
  });
});

describe('engineStatusClass', () => {
  it.each([
    ['SUCCEEDED', 'ok'],
    ['RUNNING', 'ok'],
    ['HEALTHY', 'ok'],
    ['FINISHED', 'ok'],
    ['PENDING', 'busy'],
    ['DEPLOYING', 'busy'],
    ['SCHEDULED', 'busy'],
    ['UPDATING', 'busy'],
    ['FAILED', 'failed'],
    ['UNHEALTHY', 'failed'],
    ['DEPLOY_FAILED', 'failed'],
    ['KILLED', 'failed'],
    ['STOPPED', 'none'],
    ['running', 'none']
  ])('maps %s to the %s colour', (status, colour) => {
    expect(engineStatusClass(status)).toBe(`jp-WorkbenchStatus-${colour}`);
  });
});

describe('mainMetric', () => {
  it('prefers the run comparer order over the names present', () => {
    const runs = [runWith({ loss: 0.3, accuracy: 0.9 }), runWith({ roc_auc: 0.8 })];
    expect(mainMetric(runs)).toBe('roc_auc');
    expect(mainMetric([runWith({ loss: 0.3, r2: 0.5, val_loss: 0.4 })])).toBe('r2');
  });

  it('ignores a metric that no run has a value of', () => {
    expect(mainMetric([runWith({ roc_auc: null, accuracy: 0.7 })])).toBe('accuracy');
  });

  it('falls back to the first name in sort order, or nothing', () => {
    expect(mainMetric([runWith({ zeta: 1, alpha: 2 }), runWith({ beta: 3 })])).toBe('alpha');
    expect(mainMetric([runWith({ only_null: null })])).toBe('');
    expect(mainMetric([])).toBe('');
  });
});

describe('formatMetric', () => {
  it('shows four significant digits, integers as they are', () => {
    expect(formatMetric(0.876543)).toBe('0.8765');
    expect(formatMetric(123.456)).toBe('123.5');
    expect(formatMetric(0.00012345)).toBe('0.0001234');
    expect(formatMetric(12)).toBe('12');
    expect(formatMetric(0)).toBe('0');
  });

  it('shows a dash when there is no finite value', () => {
    for (const missing of [null, undefined, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(formatMetric(missing)).toBe('—');
    }
  });
});

describe('logTail', () => {
  it('keeps the last lines, without the trailing newlines', () => {
    expect(logTail('a\nb\nc\nd\n\n', 2)).toBe('c\nd');
    expect(logTail('a\nb', 5)).toBe('a\nb');
    expect(logTail('', 3)).toBe('');
  });
});

describe('duration', () => {
  it('counts from the start to the end, in s, min and h', () => {
    expect(duration(1000, 1012, 9999)).toBe('12 s');
    expect(duration(1000, 1000 + 185, 0)).toBe('3 min 5 s');
    expect(duration(1000, 1000 + 2 * 3600 + 4 * 60 + 59, 0)).toBe('2 h 4 min');
    expect(duration(1000, 1059.6, 0)).toBe('1 min 0 s');
  });

  it('counts to now while the job runs, never below zero, nothing before it started', () => {
    expect(duration(1000, 0, 1042)).toBe('42 s');
    expect(duration(1000, 0, 990)).toBe('0 s');
    expect(duration(0, 1012, 2000)).toBe('');
  });
});

describe('clockTime', () => {
  it('gives the time with seconds for today, the date and minutes for another day', () => {
    const now = new Date(2026, 2, 14, 18, 0, 0);
    expect(clockTime(new Date(2026, 2, 14, 9, 5, 7).getTime(), now)).toBe('09:05:07');
    expect(clockTime(new Date(2026, 0, 3, 23, 59, 30).getTime(), now)).toBe('2026-01-03 23:59');
  });

  it('gives nothing for a time of 0 (not started)', () => {
    expect(clockTime(0)).toBe('');
  });
});

describe('replicaSummary', () => {
  it('lists the states with replicas, in name order', () => {
    expect(replicaSummary({ STARTING: 1, RUNNING: 2, STOPPING: 0 })).toBe('2 RUNNING, 1 STARTING');
  });

  it('says so when there are no replicas', () => {
    expect(replicaSummary({})).toBe('no replicas');
    expect(replicaSummary({ RUNNING: 0 })).toBe('no replicas');
  });
});

describe('deploymentHealthy', () => {
  it('is healthy when Serve says RUNNING and every counted replica runs', () => {
    expect(deploymentHealthy('RUNNING', { RUNNING: 2, STARTING: 0 })).toBe(true);
  });

  it('is not healthy with a replica in another state, no replica, or another status', () => {
    expect(deploymentHealthy('RUNNING', { RUNNING: 2, STARTING: 1 })).toBe(false);
    expect(deploymentHealthy('RUNNING', {})).toBe(false);
    expect(deploymentHealthy('RUNNING', { RUNNING: 0 })).toBe(false);
    expect(deploymentHealthy('DEPLOYING', { RUNNING: 1 })).toBe(false);
  });
});

describe('freeNotebookName', () => {
  it('takes the base name when it is free, else the first free numbered one', () => {
    expect(freeNotebookName('compare', new Set())).toBe('compare.ipynb');
    expect(freeNotebookName('compare', new Set(['compare.ipynb', 'compare-1.ipynb']))).toBe('compare-2.ipynb');
  });

  it('puts the notebook in the folder, with one slash', () => {
    expect(freeNotebookName('compare', new Set(['work/compare.ipynb']), 'work//')).toBe('work/compare-1.ipynb');
    expect(freeNotebookName('compare', new Set(['compare.ipynb']), 'work')).toBe('work/compare.ipynb');
  });
});

describe('comparerNotebook', () => {
  type Cell = { cell_type: string; source: string };

  it('opens the comparer of the named experiment, the name as a JSON string', () => {
    const notebook = comparerNotebook('fraud "v2"');
    const cells = notebook.cells as Cell[];
    expect(notebook.nbformat).toBe(4);
    expect(cells.map(cell => cell.cell_type)).toEqual(['markdown', 'code']);
    expect(cells[0].source).toBe('# Runs of fraud "v2"\n\nRun the cell to compare the MLflow runs.');
    expect(cells[1].source).toBe(
      'from workbench.widgets.run_comparer import RunComparer\n\nRunComparer("fraud \\"v2\\"")'
    );
  });

  it("opens the project's own experiment when none is named", () => {
    const cells = comparerNotebook('').cells as Cell[];
    expect(cells[0].source).toBe("# Runs of the project's experiment\n\nRun the cell to compare the MLflow runs.");
    expect(cells[1].source.endsWith('RunComparer()')).toBe(true);
  });
});

describe('dashboardUrl', () => {
  it('is the proxy path under the base URL, with the deployment as a query', () => {
    expect(dashboardUrl('/', 'fraud')).toBe('/workbench-dashboard/?deployment=fraud');
    expect(dashboardUrl('/user/ana/', '')).toBe('/user/ana/workbench-dashboard/');
    expect(dashboardUrl('/user/ana')).toBe('/user/ana/workbench-dashboard/');
    expect(dashboardUrl('/', 'a b&c')).toBe('/workbench-dashboard/?deployment=a%20b%26c');
  });
});
