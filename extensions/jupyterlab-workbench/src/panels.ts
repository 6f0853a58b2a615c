/**
 * The Jobs, Runs and Deployments panels: three tabs of one left-area widget ("Workbench activity").
 * Only the tab in front polls, and none does while the side area is collapsed or the browser tab is in
 * the background (PollingWidget). Everything comes from the server extension's routes: jobs,
 * jobs/<id>/logs, jobs/<id>/stop, runs, deployments. An API error is shown as the server's message in the
 * panel, and the last good content stays under it.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Contents } from '@jupyterlab/services';
import { CommandRegistry } from '@lumino/commands';
import { TabPanel } from '@lumino/widgets';

import {
  clockTime,
  comparerNotebook,
  deploymentHealthy,
  duration,
  engineStatusClass,
  formatMetric,
  freeNotebookName,
  isTerminal,
  logTail,
  mainMetric,
  replicaSummary
} from './panel_format';
import { PollingWidget } from './poll';
import { APIError, postAPI, requestAPI } from './request';
import { Deployment, JobLogs, JobSummary, RunsReply } from './types';

export const JOBS_POLL_MS = 2500;
export const RUNS_POLL_MS = 8000;
export const DEPLOYMENTS_POLL_MS = 5000;
const MAX_JOBS = 30;
const MAX_RUNS = 25;
const LOG_LINES = 400;

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text) {
    node.textContent = text;
  }
  return node;
}

/** "Could not list the jobs: Ray at http://… is not answering (HTTP 503)": what went wrong, in words. */
export function errorText(action: string, error: unknown): string {
  if (error instanceof APIError) {
    return `${action}: ${error.message} (HTTP ${error.status})`;
  }
  const message = error instanceof Error ? error.message : String(error);
  return `${action}: the Jupyter server did not answer (${message})`;
}

function statusBadge(status: string, text = status): HTMLSpanElement {
  return element('span', `jp-WorkbenchPanel-status ${engineStatusClass(status)}`, text);
}

/** The common frame of a panel: a title line, an error line, the body. */
abstract class ActivityPanel extends PollingWidget {
  protected readonly headNode: HTMLDivElement;
  protected readonly errorNode: HTMLDivElement;
  protected readonly bodyNode: HTMLDivElement;

  constructor(id: string, label: string, intervalMs: number) {
    super(intervalMs);
    this.id = id;
    this.title.label = label;
    this.title.caption = label;
    this.addClass('jp-WorkbenchPanel');
    this.headNode = element('div', 'jp-WorkbenchPanel-head');
    this.errorNode = element('div', 'jp-WorkbenchPanel-error');
    this.bodyNode = element('div', 'jp-WorkbenchPanel-body');
    this.node.append(this.headNode, this.errorNode, this.bodyNode);
  }

  protected showError(action: string, error: unknown): void {
    this.errorNode.textContent = errorText(action, error);
  }

  protected clearError(): void {
    this.errorNode.textContent = '';
  }
}

// Jobs ---------------------------------------------------------------------------------------------
export class JobsPanel extends ActivityPanel {
  private jobs: JobSummary[] = [];
  private selected: string | null = null;
  /** The status the selected job had when its log was last read (a finished job's log is read once). */
  private logReadAt: string | null = null;
  private readonly listNode: HTMLDivElement;
  private readonly detailNode: HTMLDivElement;
  private readonly logNode: HTMLPreElement;

  constructor() {
    super('workbench-jobs', 'Jobs', JOBS_POLL_MS);
    this.headNode.textContent = 'Ray jobs';
    this.listNode = element('div', 'jp-WorkbenchJobs-list');
    this.detailNode = element('div', 'jp-WorkbenchJobs-detail');
    this.logNode = element('pre', 'jp-WorkbenchJobs-log');
    this.bodyNode.append(this.listNode, this.detailNode, this.logNode);
  }

  async refresh(): Promise<void> {
    try {
      const reply = await requestAPI<{ jobs: JobSummary[] }>('jobs');
      this.jobs = reply.jobs;
      this.clearError();
    } catch (error) {
      this.showError('Could not list the jobs', error);
      return;
    }
    this.renderList();
    await this.readLog();
  }

  select(jobId: string): void {
    this.selected = jobId;
    this.logReadAt = null;
    this.logNode.textContent = '';
    this.renderList();
    void this.readLog();
  }

  private selectedJob(): JobSummary | undefined {
    return this.jobs.find(job => job.job_id === this.selected);
  }

  private async readLog(): Promise<void> {
    const job = this.selectedJob();
    this.renderDetail(job);
    if (!job || (isTerminal(job.status) && this.logReadAt === job.status)) {
      return;
    }
    const status = job.status;
    try {
      const reply = await requestAPI<JobLogs>(`jobs/${encodeURIComponent(job.job_id)}/logs`);
      if (reply.job_id !== this.selected) {
        return; // another job was selected meanwhile
      }
      const follow = this.logNode.scrollTop + this.logNode.clientHeight >= this.logNode.scrollHeight - 4;
      this.logNode.textContent = logTail(reply.log, LOG_LINES) || '(no log lines yet)';
      if (follow) {
        this.logNode.scrollTop = this.logNode.scrollHeight;
      }
      this.logReadAt = status;
    } catch (error) {
      this.showError(`Could not read the log of ${job.job_id}`, error);
    }
  }

  private renderList(): void {
    if (this.jobs.length === 0) {
      this.listNode.replaceChildren(
        element('div', 'jp-WorkbenchPanel-empty', 'No workbench jobs on the Ray cluster yet. Run the Training stage to start one.')
      );
      return;
    }
    const now = Date.now() / 1000;
    const rows = this.jobs.slice(0, MAX_JOBS).map(job => {
      const row = element('div', 'jp-WorkbenchJobs-row');
      row.dataset.jobId = job.job_id;
      row.classList.toggle('jp-mod-selected', job.job_id === this.selected);
      row.title = job.message || job.job_id;
      // two lines in a narrow side area: id | status, then kind · trainer | duration
      row.append(
        element('span', 'jp-WorkbenchJobs-id', job.job_id),
        statusBadge(job.status),
        element('span', 'jp-WorkbenchJobs-kind', [job.kind, job.trainer].filter(Boolean).join(' · ')),
        element('span', 'jp-WorkbenchJobs-time', duration(job.start_time, job.end_time, now))
      );
      row.onclick = () => this.select(job.job_id);
      return row;
    });
    if (this.jobs.length > MAX_JOBS) {
      rows.push(element('div', 'jp-WorkbenchPanel-more', `${this.jobs.length - MAX_JOBS} older jobs not shown`));
    }
    this.listNode.replaceChildren(...rows);
  }

  private renderDetail(job: JobSummary | undefined): void {
    if (!job) {
      this.detailNode.replaceChildren(
        element('div', 'jp-WorkbenchPanel-hint', this.jobs.length ? 'Select a job to follow its log.' : '')
      );
      this.logNode.style.display = 'none';
      return;
    }
    this.logNode.style.display = '';
    const head = element('div', 'jp-WorkbenchJobs-detailHead');
    head.append(element('span', 'jp-WorkbenchJobs-detailId', job.job_id), statusBadge(job.status));
    if (!isTerminal(job.status)) {
      const stop = element('button', 'jp-mod-styled jp-mod-warn jp-WorkbenchJobs-stop', 'Stop');
      stop.onclick = () => void this.stop(job.job_id);
      head.appendChild(stop);
    }
    const lines: HTMLElement[] = [head];
    if (job.run_id) {
      lines.push(element('div', 'jp-WorkbenchPanel-detail', `MLflow run ${job.run_id}`));
    }
    if (job.message) {
      lines.push(element('div', 'jp-WorkbenchPanel-detail', job.message));
    }
    this.detailNode.replaceChildren(...lines);
  }

  async stop(jobId: string): Promise<void> {
    const answer = await showDialog({
      title: 'Stop job',
      body: `Stop Ray job ${jobId}? Ray ends its processes; the job cannot be resumed.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop job' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await postAPI<{ job_id: string; status: string }>(`jobs/${encodeURIComponent(jobId)}/stop`, {});
    } catch (error) {
      await showErrorMessage('Stop job', errorText(`Could not stop ${jobId}`, error));
    }
    await this.poller.now();
  }
}

// Runs ---------------------------------------------------------------------------------------------
export class RunsPanel extends ActivityPanel {
  private experiment = '';
  private readonly listNode: HTMLDivElement;
  private readonly compare: HTMLButtonElement;

  constructor(
    private readonly commands: CommandRegistry,
    private readonly contents: Contents.IManager
  ) {
    super('workbench-runs', 'Runs', RUNS_POLL_MS);
    this.headNode.textContent = 'MLflow runs';
    this.compare = element('button', 'jp-mod-styled jp-mod-accept jp-WorkbenchRuns-compare', 'Compare runs');
    this.compare.title = 'Open a new notebook with the run comparer of this experiment';
    this.compare.onclick = () => void this.openComparer();
    this.listNode = element('div', 'jp-WorkbenchRuns-list');
    this.bodyNode.append(this.compare, this.listNode);
  }

  async refresh(): Promise<void> {
    let reply: RunsReply;
    try {
      reply = await requestAPI<RunsReply>('runs', {}, { limit: String(MAX_RUNS) });
      this.clearError();
    } catch (error) {
      this.showError('Could not list the runs', error);
      return;
    }
    this.experiment = reply.experiment;
    this.headNode.textContent = `MLflow runs of ${reply.experiment}`;
    this.render(reply);
  }

  private render(reply: RunsReply): void {
    if (reply.runs.length === 0) {
      this.listNode.replaceChildren(
        element('div', 'jp-WorkbenchPanel-empty', reply.experiment_id
          ? `No runs in experiment ${reply.experiment} yet.`
          : `No experiment ${reply.experiment} in MLflow yet: the Training stage creates it.`)
      );
      return;
    }
    const metric = mainMetric(reply.runs);
    const header = element('div', 'jp-WorkbenchRuns-row jp-WorkbenchRuns-header');
    header.append(
      element('span', 'jp-WorkbenchRuns-name', 'run'),
      element('span', 'jp-WorkbenchRuns-metric', metric || 'metric')
    );
    const rows = reply.runs.map(run => {
      const row = element('div', 'jp-WorkbenchRuns-row');
      row.dataset.runId = run.run_id;
      row.title = run.run_id;
      // two lines in a narrow side area: name | metric, then status | start time
      row.append(
        element('span', 'jp-WorkbenchRuns-name', run.run_name || run.run_id.slice(0, 8)),
        element('span', 'jp-WorkbenchRuns-metric', metric ? formatMetric(run.metrics[metric]) : '—'),
        statusBadge(run.status),
        element('span', 'jp-WorkbenchRuns-time', clockTime(run.start_time))
      );
      return row;
    });
    this.listNode.replaceChildren(header, ...rows);
  }

  /** A new notebook (never overwriting one) holding `RunComparer("<experiment>")`, opened. */
  async openComparer(): Promise<string | null> {
    try {
      const listing = await this.contents.get('', { content: true });
      const taken = new Set<string>(
        (Array.isArray(listing.content) ? (listing.content as Contents.IModel[]) : []).map(item => item.path)
      );
      const path = freeNotebookName('run_comparer', taken);
      await this.contents.save(path, {
        type: 'notebook',
        format: 'json',
        content: comparerNotebook(this.experiment)
      });
      await this.commands.execute('docmanager:open', { path });
      return path;
    } catch (error) {
      await showErrorMessage('Compare runs', errorText('Could not create the run comparer notebook', error));
      return null;
    }
  }
}

// Deployments --------------------------------------------------------------------------------------
export class DeploymentsPanel extends ActivityPanel {
  private readonly listNode: HTMLDivElement;

  constructor(private readonly commands: CommandRegistry) {
    super('workbench-deployments', 'Deployments', DEPLOYMENTS_POLL_MS);
    this.headNode.textContent = 'Ray Serve endpoints';
    const all = element('button', 'jp-WorkbenchPanel-button jp-WorkbenchDeployments-dashboard', 'Monitoring dashboard');
    all.title = 'Open the live monitoring dashboard in a tab';
    all.addEventListener('click', () => void this.commands.execute('workbench:open-dashboard', {}));
    this.headNode.appendChild(all);
    this.listNode = element('div', 'jp-WorkbenchDeployments-list');
    this.bodyNode.appendChild(this.listNode);
  }

  async refresh(): Promise<void> {
    let deployments: Deployment[];
    try {
      deployments = (await requestAPI<{ deployments: Deployment[] }>('deployments')).deployments;
      this.clearError();
    } catch (error) {
      this.showError('Could not list the deployments', error);
      return;
    }
    if (deployments.length === 0) {
      this.listNode.replaceChildren(
        element('div', 'jp-WorkbenchPanel-empty', 'No deployments on the cluster. Run the Deployment stage to serve a model.')
      );
      return;
    }
    this.listNode.replaceChildren(...deployments.map(d => this.card(d)));
  }

  private card(d: Deployment): HTMLDivElement {
    const card = element('div', 'jp-WorkbenchDeployment');
    card.dataset.deployment = d.name;
    const healthy = deploymentHealthy(d.status, d.replicas);
    const head = element('div', 'jp-WorkbenchDeployment-head');
    head.append(
      element('span', 'jp-WorkbenchDeployment-name', d.name),
      element('span', `jp-WorkbenchDeployment-health ${healthy ? 'jp-WorkbenchStatus-ok' : engineStatusClass(d.status === 'RUNNING' ? 'DEPLOYING' : d.status)}`,
        healthy ? 'healthy' : d.status.toLowerCase())
    );
    const link = element('a', 'jp-WorkbenchDeployment-url', d.url);
    link.href = d.url;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    const url = element('div', 'jp-WorkbenchPanel-detail');
    url.append('endpoint ', link);
    const lines: HTMLElement[] = [
      head,
      element('div', 'jp-WorkbenchDeployment-version', `version ${d.model_version || '?'}` +
        (d.previous_versions.length ? ` (before: ${d.previous_versions.join(', ')})` : '')),
      element('div', 'jp-WorkbenchDeployment-replicas', `replicas: ${replicaSummary(d.replicas)}`),
      url
    ];
    if (d.message) {
      lines.push(element('div', 'jp-WorkbenchPanel-detail jp-WorkbenchDeployment-message', d.message));
    }
    const monitor = element('button', 'jp-WorkbenchPanel-button jp-WorkbenchDeployment-dashboard', 'Dashboard');
    monitor.title = `Open the monitoring dashboard of ${d.name} in a tab`;
    monitor.addEventListener('click', () => void this.commands.execute('workbench:open-dashboard', { deployment: d.name }));
    lines.push(monitor);
    card.append(...lines);
    return card;
  }
}

/** The left-area widget holding the three panels as tabs. */
export class WorkbenchActivity extends TabPanel {
  readonly jobs: JobsPanel;
  readonly runs: RunsPanel;
  readonly deployments: DeploymentsPanel;

  constructor(commands: CommandRegistry, contents: Contents.IManager) {
    super();
    this.id = 'workbench-activity';
    this.addClass('jp-WorkbenchActivity');
    this.title.caption = 'Workbench: jobs, runs, deployments';
    this.jobs = new JobsPanel();
    this.runs = new RunsPanel(commands, contents);
    this.deployments = new DeploymentsPanel(commands);
    this.addWidget(this.jobs);
    this.addWidget(this.runs);
    this.addWidget(this.deployments);
  }
}
