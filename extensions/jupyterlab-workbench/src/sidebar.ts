/**
 * The Workbench sidebar: the six lifecycle stages with their status (from /stages), "Open template" and
 * "Run stage" per stage, and the services with start/stop. It polls only while it is visible.
 */
import { Dialog, InputDialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { headlineLines, runMessage, statusClass } from './format';
import { postAPI, requestAPI } from './request';
import { ServicesReply, StageRun, StageSummary } from './types';

export const POLL_MS = 5000;
const RUN_POLL_MS = 1500;

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

export class WorkbenchSidebar extends Widget {
  /** The project folder (relative to the server root) the stages belong to; '' is the server's own. */
  project = '';
  private readonly commands: CommandRegistry;
  private readonly stagesNode: HTMLDivElement;
  private readonly servicesNode: HTMLDivElement;
  private readonly projectNode: HTMLDivElement;
  private readonly errorNode: HTMLDivElement;
  private timer: number | null = null;
  private readonly runs = new Map<string, StageRun>(); // by stage
  private runTimer: number | null = null;

  constructor(commands: CommandRegistry) {
    super();
    this.commands = commands;
    this.id = 'workbench-sidebar';
    this.addClass('jp-WorkbenchSidebar');
    this.title.caption = 'Workbench';
    const header = element('div', 'jp-WorkbenchSidebar-header');
    header.appendChild(element('h2', 'jp-WorkbenchSidebar-title', 'Workbench'));
    const newProject = element('button', 'jp-mod-styled jp-mod-accept', 'New lifecycle project');
    newProject.onclick = () => void this.commands.execute('workbench:new-project');
    header.appendChild(newProject);
    this.projectNode = element('div', 'jp-WorkbenchSidebar-project');
    this.errorNode = element('div', 'jp-WorkbenchSidebar-error');
    this.stagesNode = element('div', 'jp-WorkbenchSidebar-stages');
    this.servicesNode = element('div', 'jp-WorkbenchSidebar-services');
    this.node.append(header, this.projectNode, this.errorNode,
      element('h3', 'jp-WorkbenchSidebar-section', 'Lifecycle'), this.stagesNode,
      element('h3', 'jp-WorkbenchSidebar-section', 'Services'), this.servicesNode);
  }

  setProject(project: string): void {
    this.project = project;
    void this.refresh();
  }

  // polling only while visible ---------------------------------------------------------------
  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.startPolling();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this.startPolling();
    }
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.stopPolling();
  }

  protected onBeforeDetach(msg: Message): void {
    this.stopPolling();
    super.onBeforeDetach(msg);
  }

  private startPolling(): void {
    if (this.timer === null) {
      void this.refresh();
      this.timer = window.setInterval(() => void this.refresh(), POLL_MS);
    }
    if (this.runTimer === null) {
      this.runTimer = window.setInterval(() => void this.pollRuns(), RUN_POLL_MS);
    }
  }

  private stopPolling(): void {
    if (this.timer !== null) {
      window.clearInterval(this.timer);
      this.timer = null;
    }
    if (this.runTimer !== null) {
      window.clearInterval(this.runTimer);
      this.runTimer = null;
    }
  }

  get polling(): boolean {
    return this.timer !== null;
  }

  // data -------------------------------------------------------------------------------------
  async refresh(): Promise<void> {
    this.projectNode.textContent = `Project: ${this.project || '(server root project)'}`;
    try {
      const [stages, services] = await Promise.all([
        requestAPI<{ stages: StageSummary[] }>('stages', {}, this.project ? { project: this.project } : {}),
        requestAPI<ServicesReply>('services')
      ]);
      this.errorNode.textContent = '';
      this.renderStages(stages.stages);
      this.renderServices(services);
    } catch (error) {
      this.errorNode.textContent = `The workbench server extension did not answer: ${(error as Error).message}`;
    }
  }

  private async pollRuns(): Promise<void> {
    const active = [...this.runs.values()].filter(r => r.status === 'queued' || r.status === 'running');
    for (const run of active) {
      try {
        const now = await requestAPI<StageRun>(`stage-runs/${encodeURIComponent(run.run_id)}`);
        this.runs.set(now.stage, now);
        if (now.status === 'succeeded' || now.status === 'failed') {
          await this.finished(now);
          void this.refresh();
        } else {
          this.updateRunLine(now);
        }
      } catch (error) {
        this.errorNode.textContent = (error as Error).message;
      }
    }
  }

  private async finished(run: StageRun): Promise<void> {
    this.updateRunLine(run);
    if (run.notebook && !run.notebook.startsWith('/')) {
      await this.commands.execute('docmanager:open', { path: run.notebook });
    }
    if (run.status === 'failed') {
      const cell = run.failed_cell;
      const body = element('pre', 'jp-WorkbenchSidebar-failure',
        cell ? `cell ${cell.index}:\n${cell.source}\n\n${cell.ename}: ${cell.evalue}` : run.error);
      await showDialog({
        title: `Stage ${run.stage} failed`,
        body: new Widget({ node: body }),
        buttons: [Dialog.okButton()]
      });
    }
  }

  // actions ----------------------------------------------------------------------------------
  async openTemplate(stage: string): Promise<void> {
    try {
      const made = await postAPI<{ path: string }>('templates', { stage, folder: this.project });
      await this.commands.execute('docmanager:open', { path: made.path });
    } catch (error) {
      await showErrorMessage('Open template', (error as Error).message);
    }
  }

  async runStage(stage: string): Promise<void> {
    const answer = await InputDialog.getText({
      title: `Run stage ${stage}: parameters (JSON object)`,
      text: '{}'
    });
    if (!answer.button.accept) {
      return;
    }
    let parameters: unknown;
    try {
      parameters = JSON.parse(answer.value || '{}');
    } catch (error) {
      await showErrorMessage('Run stage', `Parameters are not JSON: ${(error as Error).message}`);
      return;
    }
    try {
      const run = await postAPI<StageRun>('stage-runs', { stage, parameters, project: this.project });
      this.runs.set(stage, run);
      this.updateRunLine(run);
    } catch (error) {
      await showErrorMessage('Run stage', (error as Error).message);
    }
  }

  private async service(name: string, action: 'start' | 'stop'): Promise<void> {
    try {
      const reply = await postAPI<ServicesReply>(`services/${name}/${action}`, {});
      void reply;
      void this.refresh();
    } catch (error) {
      await showErrorMessage(`${action} ${name}`, (error as Error).message);
    }
  }

  // rendering --------------------------------------------------------------------------------
  private renderStages(stages: StageSummary[]): void {
    this.stagesNode.replaceChildren(...stages.map((summary, i) => {
      const row = element('div', 'jp-WorkbenchStage');
      row.dataset.stage = summary.stage;
      const head = element('div', 'jp-WorkbenchStage-head');
      head.appendChild(element('span', 'jp-WorkbenchStage-title', `${i + 1}. ${summary.title}`));
      head.appendChild(element('span', `jp-WorkbenchStage-status ${statusClass(summary.status)}`, summary.status));
      row.appendChild(head);
      for (const line of headlineLines(summary)) {
        row.appendChild(element('div', 'jp-WorkbenchStage-detail', line));
      }
      const run = this.runs.get(summary.stage);
      row.appendChild(element('div', 'jp-WorkbenchStage-run', run ? runMessage(run) : ''));
      const buttons = element('div', 'jp-WorkbenchStage-buttons');
      const open = element('button', 'jp-mod-styled', 'Open template');
      open.onclick = () => void this.openTemplate(summary.stage);
      const start = element('button', 'jp-mod-styled jp-mod-accept', 'Run stage');
      start.onclick = () => void this.runStage(summary.stage);
      buttons.append(open, start);
      row.appendChild(buttons);
      return row;
    }));
  }

  private updateRunLine(run: StageRun): void {
    const line = this.stagesNode.querySelector(`[data-stage="${run.stage}"] .jp-WorkbenchStage-run`);
    if (line) {
      line.textContent = runMessage(run);
    }
  }

  private renderServices(reply: ServicesReply): void {
    const rows = reply.services.map(service => {
      const row = element('div', 'jp-WorkbenchService');
      row.dataset.service = service.name;
      row.appendChild(element('span', `jp-WorkbenchService-dot ${service.healthy ? 'jp-WorkbenchStatus-ok' : 'jp-WorkbenchStatus-failed'}`, '●'));
      row.appendChild(element('span', 'jp-WorkbenchService-name', `${service.name} ${service.healthy ? 'up' : 'down'}`));
      if (service.managed) {
        const action = service.healthy ? 'stop' : 'start';
        const button = element('button', 'jp-mod-styled', action);
        button.onclick = () => void this.service(service.name, action);
        row.appendChild(button);
      }
      return row;
    });
    const links = element('div', 'jp-WorkbenchService-links');
    for (const [name, url] of Object.entries(reply.links)) {
      const a = element('a', 'jp-WorkbenchService-link', name === 'mlflow' ? 'MLflow UI' : 'Ray dashboard');
      a.href = url;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      links.appendChild(a);
    }
    this.servicesNode.replaceChildren(...rows, links);
  }
}
