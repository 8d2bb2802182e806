// Open cell: the notebook that made a run, scrolled to the cell (by its id) and
// highlighted, or a note that the cell was changed since the run or is gone.
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { PageConfig } from '@jupyterlab/coreutils';
import { api } from './api';

export const CELL_PARAM = 'nbtrack-cell';
export const RUN_PARAM = 'nbtrack-run';
const HIGHLIGHT = 'nbt-cell-highlight';
const HIGHLIGHT_MS = 8000;

interface CellInfo {
  notebook: string | null;
  recorded_notebook: string | null;
  cell_id: string | null;
  execution_count: number | null;
  source: string;
}

/** True in Notebook 7, where each notebook opens in a browser tab of its own. */
export function isNotebook7(app: JupyterFrontEnd): boolean {
  return app.name === 'Jupyter Notebook';
}

export async function openCell(
  app: JupyterFrontEnd,
  docs: IDocumentManager,
  runId: string,
  note?: HTMLElement
): Promise<string> {
  const { cell, run } = await api<{ cell: CellInfo | null; run: any }>(`runs/${runId}`);
  const name = run.info.run_name;
  if (!cell) {
    return say(note, `Run ${name} was logged from code, not from a notebook cell.`, 'info');
  }
  if (!cell.notebook) {
    return say(note, `The notebook of run ${name} (${cell.recorded_notebook ?? 'unknown'}) is outside this server's root.`, 'warning');
  }
  if (isNotebook7(app)) {
    // The notebook opens in its own tab; that page scrolls to the cell (revealFromUrl).
    const url = URLExt.join(PageConfig.getBaseUrl(), 'notebooks', URLExt.encodeParts(cell.notebook));
    window.open(`${url}?${CELL_PARAM}=${encodeURIComponent(cell.cell_id ?? '')}&${RUN_PARAM}=${runId}`, '_blank');
    return say(note, `Opened ${cell.notebook} in a new tab.`, 'info');
  }
  const exists = await app.serviceManager.contents.get(cell.notebook, { content: false }).then(
    () => true,
    () => false
  );
  if (!exists) {
    return say(note, `The notebook ${cell.notebook} that made run ${name} is gone (moved or deleted).`, 'warning');
  }
  const panel = docs.openOrReveal(cell.notebook) as NotebookPanel | undefined;
  if (!panel) {
    return say(note, `Could not open ${cell.notebook}.`, 'warning');
  }
  return say(note, await reveal(panel, runId, cell.cell_id, name), 'info');
}

/** Scroll to and highlight the cell with `cellId`; say whether it still is the run's. */
export async function reveal(
  panel: NotebookPanel,
  runId: string,
  cellId: string | null,
  name: string
): Promise<string> {
  await panel.context.ready;
  await panel.revealed;
  const notebook = panel.content;
  const index = notebook.widgets.findIndex(c => c.model.id === cellId);
  if (!cellId || index < 0) {
    return `The cell that made run ${name} is no longer in ${panel.context.path} (removed).`;
  }
  const cell = notebook.widgets[index];
  notebook.activeCellIndex = index;
  await notebook.scrollToItem(index, 'center');
  cell.node.classList.add(HIGHLIGHT);
  cell.node.dataset.nbtrackRun = runId;
  setTimeout(() => cell.node.classList.remove(HIGHLIGHT), HIGHLIGHT_MS);
  const { matches } = await api<{ matches: boolean }>(`runs/${runId}/cell`, 'POST', {
    source: cell.model.sharedModel.getSource()
  });
  const where = `${panel.context.path}, cell [${notebook.widgets.indexOf(cell) + 1}]`;
  if (!matches) {
    cell.node.classList.add('nbt-cell-changed');
    setTimeout(() => cell.node.classList.remove('nbt-cell-changed'), HIGHLIGHT_MS);
    return `${where}: the cell was changed since run ${name} ran.`;
  }
  return `${where}: the cell that made run ${name}.`;
}

/** Notebook 7's notebook page, opened by Open cell: reveal the cell its URL names. */
export function revealFromUrl(tracker: INotebookTracker): void {
  const params = new URLSearchParams(window.location.search);
  const cellId = params.get(CELL_PARAM);
  const runId = params.get(RUN_PARAM);
  if (!cellId || !runId) {
    return;
  }
  const go = async (panel: NotebookPanel | null) => {
    if (!panel) {
      return;
    }
    const { run } = await api(`runs/${runId}`);
    const said = await reveal(panel, runId, cellId, run.info.run_name);
    Notification.info(said, { autoClose: 8000 });
  };
  if (tracker.currentWidget) {
    void go(tracker.currentWidget);
  } else {
    const once = (_: unknown, panel: NotebookPanel | null) => {
      tracker.currentChanged.disconnect(once);
      void go(panel);
    };
    tracker.currentChanged.connect(once);
  }
}

function say(note: HTMLElement | undefined, text: string, kind: 'info' | 'warning'): string {
  if (note) {
    note.textContent = text;
    note.dataset.kind = kind;
  }
  if (kind === 'warning') {
    Notification.warning(text, { autoClose: 8000 });
  }
  return text;
}
