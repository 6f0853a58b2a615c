/** Pure helpers of the Jobs, Runs and Deployments panels (no DOM, no server). */
import { RunSummary } from './types';

/** Ray job states after which nothing changes (no more log lines, nothing to stop). */
export const TERMINAL_JOB_STATES = new Set(['SUCCEEDED', 'FAILED', 'STOPPED']);

export function isTerminal(status: string): boolean {
  return TERMINAL_JOB_STATES.has(status);
}

/** The status colour class (the sidebar's) of a Ray job or a Serve application. */
export function engineStatusClass(status: string): string {
  switch (status) {
    case 'SUCCEEDED':
    case 'RUNNING':
    case 'HEALTHY':
    case 'FINISHED':
      return 'jp-WorkbenchStatus-ok';
    case 'PENDING':
    case 'DEPLOYING':
    case 'SCHEDULED':
    case 'UPDATING':
      return 'jp-WorkbenchStatus-busy';
    case 'FAILED':
    case 'UNHEALTHY':
    case 'DEPLOY_FAILED':
    case 'KILLED':
      return 'jp-WorkbenchStatus-failed';
    default:
      return 'jp-WorkbenchStatus-none';
  }
}

/** The metric a run list is about: the run comparer's default (same preference order), else the first name. */
export const PREFERRED_METRICS = ['roc_auc', 'val_roc_auc', 'accuracy', 'r2', 'val_loss', 'loss'];

export function mainMetric(runs: RunSummary[]): string {
  const names = new Set<string>();
  for (const run of runs) {
    for (const [name, value] of Object.entries(run.metrics)) {
      if (value !== null) {
        names.add(name);
      }
    }
  }
  const preferred = PREFERRED_METRICS.find(name => names.has(name));
  return preferred ?? [...names].sort()[0] ?? '';
}

/** Four significant digits, as a metric column shows it; '—' when the run has none. */
export function formatMetric(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return '—';
  }
  return Number.isInteger(value) ? String(value) : value.toPrecision(4);
}

/** The last `lines` lines of a log (a log tail), without a trailing empty line. */
export function logTail(log: string, lines: number): string {
  const all = log.replace(/\n+$/, '').split('\n');
  return all.slice(Math.max(0, all.length - lines)).join('\n');
}

/** "12 s", "3 min 5 s", "2 h 4 min": how long a job ran, or has run so far (`nowS` for running jobs). */
export function duration(startS: number, endS: number, nowS: number): string {
  if (!startS) {
    return '';
  }
  const total = Math.max(0, Math.round((endS || nowS) - startS));
  if (total < 60) {
    return `${total} s`;
  }
  if (total < 3600) {
    return `${Math.floor(total / 60)} min ${total % 60} s`;
  }
  return `${Math.floor(total / 3600)} h ${Math.floor((total % 3600) / 60)} min`;
}

/** A local "HH:MM:SS" (today) or "YYYY-MM-DD HH:MM" of an epoch time in milliseconds. */
export function clockTime(ms: number, now: Date = new Date()): string {
  if (!ms) {
    return '';
  }
  const when = new Date(ms);
  const pad = (n: number): string => String(n).padStart(2, '0');
  const time = `${pad(when.getHours())}:${pad(when.getMinutes())}`;
  if (when.toDateString() === now.toDateString()) {
    return `${time}:${pad(when.getSeconds())}`;
  }
  return `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())} ${time}`;
}

/** "2 RUNNING, 1 STARTING" of Serve's replica states; "no replicas" when there are none. */
export function replicaSummary(replicas: Record<string, number>): string {
  const parts = Object.entries(replicas)
    .filter(([, count]) => count > 0)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([state, count]) => `${count} ${state}`);
  return parts.length > 0 ? parts.join(', ') : 'no replicas';
}

/** A deployment is healthy when Serve says RUNNING and every replica it reports is RUNNING. */
export function deploymentHealthy(status: string, replicas: Record<string, number>): boolean {
  const states = Object.keys(replicas).filter(state => replicas[state] > 0);
  return status === 'RUNNING' && states.length > 0 && states.every(state => state === 'RUNNING');
}

/** A notebook path in `folder` that is not in `taken`: base.ipynb, base-1.ipynb, base-2.ipynb, ... */
export function freeNotebookName(base: string, taken: Set<string>, folder = ''): string {
  const prefix = folder ? `${folder.replace(/\/+$/, '')}/` : '';
  for (let i = 0; ; i++) {
    const path = `${prefix}${base}${i === 0 ? '' : `-${i}`}.ipynb`;
    if (!taken.has(path)) {
      return path;
    }
  }
}

/**
 * The run comparer notebook of an experiment ('' : the project's own): a title and one cell. The name goes
 * in as a JSON string, which is also a valid Python string literal (JSON escapes are a subset of Python's).
 */
export function comparerNotebook(experiment: string): Record<string, unknown> {
  const source =
    'from workbench.widgets.run_comparer import RunComparer\n\n' +
    `RunComparer(${experiment ? JSON.stringify(experiment) : ''})`;
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' }
    },
    cells: [
      {
        cell_type: 'markdown',
        id: 'title',
        metadata: {},
        source: `# Runs of ${experiment || 'the project\'s experiment'}\n\nRun the cell to compare the MLflow runs.`
      },
      {
        cell_type: 'code',
        id: 'comparer',
        metadata: {},
        execution_count: null,
        outputs: [],
        source
      }
    ]
  };
}

/** The proxied monitoring dashboard (jupyter-server-proxy's `workbench-dashboard`), on one deployment
 * when a name is given. `baseUrl` is the Jupyter server's base URL (it ends with '/'). */
export function dashboardUrl(baseUrl: string, deployment?: string): string {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const query = deployment ? `?deployment=${encodeURIComponent(deployment)}` : '';
  return `${base}workbench-dashboard/${query}`;
}
