/** Pure helpers of the sidebar (no DOM, no server): what a stage's status line says. */
import { StageRun, StageSummary } from './types';

export function shortValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  if (text === undefined) {
    return '';
  }
  return text.length > 28 ? `${text.slice(0, 12)}…${text.slice(-12)}` : text;
}

/** "dataset_version: sha256:ab…", one line per headline output. */
export function headlineLines(summary: StageSummary): string[] {
  return Object.entries(summary.headline).map(
    ([key, value]) => `${key}: ${shortValue(value)}`
  );
}

export function statusClass(status: string): string {
  switch (status) {
    case 'done':
    case 'succeeded':
      return 'jp-WorkbenchStatus-ok';
    case 'running':
    case 'queued':
      return 'jp-WorkbenchStatus-busy';
    case 'failed':
      return 'jp-WorkbenchStatus-failed';
    default:
      return 'jp-WorkbenchStatus-none';
  }
}

/** What the sidebar shows under a stage for a finished or running run. */
export function runMessage(run: StageRun): string {
  if (run.status === 'failed') {
    const cell = run.failed_cell;
    return cell
      ? `failed in cell ${cell.index}: ${cell.ename}: ${cell.evalue}`
      : `failed: ${run.error}`;
  }
  if (run.status === 'succeeded') {
    return 'done';
  }
  const last = run.progress[run.progress.length - 1];
  return last ? `${run.status}: ${last}` : run.status;
}
