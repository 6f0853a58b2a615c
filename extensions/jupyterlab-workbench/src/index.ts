/**
 * jupyterlab-workbench: the Workbench sidebar, a launcher card and palette entries for "New lifecycle
 * project" and each stage template. Everything goes through the server extension (workbench/server).
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, InputDialog, MainAreaWidget, showErrorMessage } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { ILauncher } from '@jupyterlab/launcher';
import { IFrame, LabIcon } from '@jupyterlab/ui-components';

import { dashboardUrl } from './panel_format';

import { WorkbenchActivity } from './panels';
import { postAPI } from './request';
import { WorkbenchSidebar } from './sidebar';
import { NewProject } from './types';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
  '<circle cx="5" cy="6" r="2.5"/><circle cx="12" cy="12" r="2.5"/><circle cx="19" cy="18" r="2.5"/>' +
  '<path d="M6.5 7.5l4 3M13.5 13.5l4 3" stroke="#616161" stroke-width="1.5"/></g></svg>';

export const workbenchIcon = new LabIcon({ name: 'workbench:icon', svgstr: ICON_SVG });

const ACTIVITY_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="none" stroke="#616161" ' +
  'stroke-width="1.8"><path d="M3 12h4l2.5-6 5 12 2.5-6h4"/></g></svg>';

export const activityIcon = new LabIcon({ name: 'workbench:activity', svgstr: ACTIVITY_SVG });

const STAGES: [string, string][] = [
  ['data', 'Data'],
  ['features', 'Features'],
  ['train', 'Training'],
  ['registry', 'Registry'],
  ['deploy', 'Deployment'],
  ['monitor', 'Monitoring']
];

const CATEGORY = 'Workbench';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-workbench:plugin',
  description: 'The workbench lifecycle sidebar, templates and stage runs.',
  autoStart: true,
  optional: [ILauncher, ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const sidebar = new WorkbenchSidebar(app.commands);
    sidebar.title.icon = workbenchIcon;
    app.shell.add(sidebar, 'left', { rank: 200 });
    if (restorer) {
      restorer.add(sidebar, sidebar.id);
    }
    // Jobs, Runs and Deployments: tabs of a second left-area widget (each polls only while in front)
    const activity = new WorkbenchActivity(app.commands, app.serviceManager.contents);
    activity.title.icon = activityIcon;
    app.shell.add(activity, 'left', { rank: 201 });
    if (restorer) {
      restorer.add(activity, activity.id);
    }

    app.commands.addCommand('workbench:new-project', {
      label: 'New lifecycle project',
      caption: 'Copy the six stage notebooks and a workbench.toml into a new folder',
      icon: workbenchIcon,
      execute: async () => {
        const answer = await InputDialog.getText({ title: 'New lifecycle project: folder name', text: 'lifecycle' });
        if (!answer.button.accept || !answer.value) {
          return;
        }
        try {
          const made = await postAPI<NewProject>('projects', { name: answer.value });
          sidebar.setProject(made.path);
          app.shell.activateById(sidebar.id);
          if (made.notebooks.length > 0) {
            await app.commands.execute('docmanager:open', { path: made.notebooks[0] });
          }
        } catch (error) {
          await showErrorMessage('New lifecycle project', (error as Error).message);
        }
      }
    });
    app.commands.addCommand('workbench:open-template', {
      // the launcher and the sidebar pass `stage` and `title` as strings (command args are any JSON values);
      // a template literal converts them as String() does
      label: args => `Open ${(args.title ?? args.stage ?? 'stage') as string} template`,
      icon: workbenchIcon,
      execute: args => sidebar.openTemplate(`${args.stage as string}`)
    });
    app.commands.addCommand('workbench:run-stage', {
      label: args => `Run stage ${(args.stage ?? '') as string}`,
      execute: args => sidebar.runStage(`${args.stage as string}`)
    });

    app.commands.addCommand('workbench:compare-runs', {
      label: 'Compare runs of the current experiment',
      caption: 'Open a new notebook with the run comparer',
      icon: workbenchIcon,
      execute: () => activity.runs.openComparer()
    });

    // the Panel app of `workbench dashboard`, started and proxied by jupyter-server-proxy
    // (workbench/server/proxy.py): same origin, the user's Jupyter authentication on every request
    app.commands.addCommand('workbench:open-dashboard', {
      label: args => (args.deployment ? `Monitoring dashboard: ${args.deployment as string}` : 'Monitoring dashboard'),
      caption: 'Latency, throughput, cost, drift and quality of a deployment, live',
      icon: activityIcon,
      execute: args => {
        const deployment = args.deployment ? `${args.deployment as string}` : '';
        const frame = new IFrame({ sandbox: ['allow-scripts', 'allow-same-origin'] });
        frame.url = dashboardUrl(PageConfig.getBaseUrl(), deployment);
        const widget = new MainAreaWidget({ content: frame });
        widget.id = `workbench-dashboard-${deployment || 'all'}-${Date.now()}`;
        widget.title.label = deployment ? `Monitoring: ${deployment}` : 'Monitoring';
        widget.title.icon = activityIcon;
        widget.title.closable = true;
        widget.addClass('jp-WorkbenchDashboard');
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
      }
    });

    if (launcher) {
      launcher.add({ command: 'workbench:new-project', category: CATEGORY, rank: 0 });
      STAGES.forEach(([stage, title], i) =>
        launcher.add({ command: 'workbench:open-template', args: { stage, title }, category: CATEGORY, rank: i + 1 })
      );
    }
    if (palette) {
      palette.addItem({ command: 'workbench:new-project', category: CATEGORY });
      palette.addItem({ command: 'workbench:compare-runs', category: CATEGORY });
      palette.addItem({ command: 'workbench:open-dashboard', category: CATEGORY });
      for (const [stage, title] of STAGES) {
        palette.addItem({ command: 'workbench:open-template', args: { stage, title }, category: CATEGORY });
      }
    }
  }
};

export default plugin;
