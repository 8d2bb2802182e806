// nbtrack in JupyterLab 4 and Notebook 7: the Experiments sidebar, the run, compare and
// registry views, Open cell, palette commands, the active run in the status bar, and the
// run cards under %%track cells drawn without a widget.
// Everything it shows comes from nbtrack's server extension (nbtrack/server).
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { api } from './api';
import { drawPlainCards } from './card';
import { Feed } from './feed';
import { isNotebook7, openCell, revealFromUrl } from './opencell';
import { PanelClient } from './remote';
import { ActiveRunItem } from './status';
import { ExperimentsSidebar, Opener, panelTab, RunView, runTab } from './views';

const ICON = new LabIcon({
  name: 'nbtrack:experiments',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M3 20h18v1.5H3z"/><path d="M4 17l4.5-6 4 3.5L19 6l1.2.9-7.5 9.6-4-3.5-3.5 4.9z"/>' +
    '</g></svg>'
});

const COMMANDS = {
  sidebar: 'nbtrack:show-experiments',
  openRun: 'nbtrack:open-run',
  openCell: 'nbtrack:open-cell',
  compare: 'nbtrack:compare-runs',
  registry: 'nbtrack:open-registry'
};

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbtrack:plugin',
  description: 'nbtrack: an Experiments sidebar over the whole store, each run linked to its cell.',
  autoStart: true,
  requires: [IDocumentManager],
  optional: [ICommandPalette, INotebookTracker, IStatusBar, IRenderMimeRegistry],
  activate: (
    app: JupyterFrontEnd,
    docs: IDocumentManager,
    palette: ICommandPalette | null,
    tracker: INotebookTracker | null,
    statusBar: IStatusBar | null,
    rendermime: IRenderMimeRegistry | null
  ) => {
    const client = new PanelClient();
    const feed = new Feed();
    const runTabs = new Map<string, MainAreaWidget>();

    const openRun = async (runId: string) => {
      const open = runTabs.get(runId);
      if (open && !open.isDisposed) {
        app.shell.activateById(open.id);
        return;
      }
      const { run } = await api(`runs/${runId}`);
      const view = new RunView(client, runId, (id, note) =>
        openCell(app, docs, id, note).then(() => undefined)
      );
      const tab = runTab(view, run.info.run_name);
      runTabs.set(runId, tab);
      app.shell.add(tab, 'main');
      app.shell.activateById(tab.id);
    };
    const addTab = async (kind: string, args: Record<string, unknown>, label: string) => {
      const tab = await panelTab(client, kind, args, label);
      tab.id = `nbtrack-${kind}-${Date.now()}`;
      app.shell.add(tab, 'main');
      app.shell.activateById(tab.id);
    };
    const opener: Opener = {
      openRun: runId => void openRun(runId),
      compare: runIds => void addTab('compare', { run_ids: runIds }, `Compare ${runIds.length} runs`),
      registry: () => void addTab('registry', {}, 'Model registry')
    };
    // The sidebar's table asks to open a run (a click on its name) or compare the selected
    // runs: in JupyterLab those become tabs instead of the inline panel's detail area.
    client.intercept((model, content) => {
      if (model.get('_anywidget_id') !== 'nbtrack.widgets.table.RunTable') {
        return false;
      }
      if (content?.kind === 'open') {
        opener.openRun(content.run_id);
        return true;
      }
      if (content?.kind === 'action' && content.name === 'compare') {
        opener.compare(content.run_ids);
        return true;
      }
      return false;
    });

    const sidebar = new ExperimentsSidebar(client, feed, opener);
    sidebar.title.icon = ICON;
    app.shell.add(sidebar, 'left', { rank: 600 });
    app.commands.addCommand(COMMANDS.sidebar, {
      label: 'nbtrack: Show Experiments',
      caption: 'the runs of every experiment in the store',
      execute: () => {
        app.shell.activateById(sidebar.id);
        void sidebar.start();
      }
    });
    app.commands.addCommand(COMMANDS.openRun, {
      label: 'nbtrack: Open Run',
      execute: args => openRun(String(args.runId))
    });
    app.commands.addCommand(COMMANDS.openCell, {
      label: 'nbtrack: Open the Cell of a Run',
      execute: args => openCell(app, docs, String(args.runId))
    });
    app.commands.addCommand(COMMANDS.compare, {
      label: 'nbtrack: Compare Runs',
      execute: args => opener.compare((args.runIds as string[]) ?? [])
    });
    app.commands.addCommand(COMMANDS.registry, {
      label: 'nbtrack: Open Model Registry',
      execute: () => opener.registry()
    });
    for (const command of [COMMANDS.sidebar, COMMANDS.registry]) {
      palette?.addItem({ command, category: 'nbtrack' });
    }

    if (tracker && statusBar) {
      const item = new ActiveRunItem(tracker, feed, runId => void openRun(runId));
      statusBar.registerStatusItem('nbtrack:active-run', {
        item,
        align: 'left',
        rank: 5,
        isActive: () => true
      });
    }
    if (tracker && rendermime) {
      drawPlainCards(rendermime, tracker);
    }
    if (tracker && isNotebook7(app)) {
      revealFromUrl(tracker);
    }
  }
};

export default plugin;
