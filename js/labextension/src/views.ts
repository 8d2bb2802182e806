// The sidebar and the main-area views. Each view hosts one or more of the notebook's
// panels (made in the server, drawn by their own ES modules: see remote.ts), so a run
// table, a run, a comparison and the registry look and behave as they do inline.
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import { ensureStyle, statusBadge } from '../../common.js';
import { api, apiUrl } from './api';
import { Feed } from './feed';
import { PanelClient, PanelView, RemoteModel } from './remote';

/** A lumino widget showing one server panel; closing it closes the panel there. */
export class PanelWidget extends Widget {
  private view: PanelView | null = null;

  constructor(
    private client: PanelClient,
    readonly model: RemoteModel
  ) {
    super();
    this.addClass('nbt-panel-widget');
    void client.create_view(model).then(view => {
      this.view = view;
      this.node.appendChild(view.el);
    });
  }

  dispose(): void {
    if (!this.isDisposed) {
      this.view?.remove();
      this.client.close(this.model);
    }
    super.dispose();
  }
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

interface Experiment {
  experiment_id: string;
  name: string;
  runs: number;
  running: number;
}

export interface Opener {
  openRun(runId: string): void;
  compare(runIds: string[]): void;
  registry(): void;
}

const SIDEBAR_METRICS = 2; // a sidebar is narrow: name, status, start and 2 metrics
const SIDEBAR_PAGE = 25;

/** The Experiments sidebar: pick an experiment (or all), and its runs table, live. */
export class ExperimentsSidebar extends Widget {
  private picker = el('select', { className: 'nbt-experiment-picker', title: 'experiment' });
  private note = el('div', { className: 'nbt-muted nbt-sidebar-note' });
  private slot = el('div', { className: 'nbt-sidebar-table' });
  private table: PanelWidget | null = null;
  private shown: string | null = null; // the experiment shown ('' for all)

  constructor(
    private client: PanelClient,
    feed: Feed,
    opener: Opener
  ) {
    super();
    ensureStyle();
    this.id = 'nbtrack-experiments';
    this.addClass('nbt-sidebar');
    this.title.caption = 'nbtrack: experiments and runs';
    const registry = el('button', { className: 'nbt-button nbt-open-registry', type: 'button' }, 'Registry');
    registry.onclick = () => opener.registry();
    this.picker.onchange = () => void this.showExperiment(this.picker.value);
    this.node.append(
      el('div', { className: 'nbt nbt-sidebar-head' },
        el('b', {}, 'Experiments'), this.picker, registry),
      this.note,
      this.slot
    );
    feed.subscribe(changes => {
      if (changes.experiments || changes.reset) { // a run added or ended changes the counts
        void this.loadExperiments();
      }
    });
  }

  private started = false;

  /** The table is made when the sidebar is first shown: a closed sidebar costs nothing. */
  protected onAfterShow(): void {
    void this.start();
  }

  protected onAfterAttach(): void {
    if (this.isVisible) {
      void this.start();
    }
  }

  /** Load the experiments and, at the same time, the table of the newest one. */
  async start(): Promise<void> {
    if (this.started) {
      return;
    }
    this.started = true;
    performance.mark('nbtrack:start');
    this.shown = '';
    const [experiments] = await Promise.all([this.loadExperiments(), this.showExperiment(null)]);
    const name = this.table?.model.get('experiment');
    const chosen = experiments.find(e => e.name === name);
    this.shown = this.picker.value = chosen ? chosen.experiment_id : '';
  }

  private loads = 0; // experiment lists asked for, so that an older answer never wins

  private async loadExperiments(): Promise<Experiment[]> {
    const load = ++this.loads;
    const [{ experiments }, store] = await Promise.all([
      api<{ experiments: Experiment[] }>('experiments'),
      api<{ path: string; exists: boolean }>('store')
    ]);
    if (load !== this.loads) {
      return experiments; // a later list is on its way: showing this one would undo it
    }
    this.note.textContent = store.exists
      ? `store: ${store.path}`
      : `No nbtrack store at ${store.path} yet: %load_ext nbtrack and a %%track cell make one.`;
    const options = [
      el('option', { value: '' }, 'all experiments'),
      ...experiments.map(e =>
        el('option', { value: e.experiment_id },
          `${e.name} (${e.runs}${e.running ? `, ${e.running} running` : ''})`)
      )
    ];
    this.picker.replaceChildren(...options);
    this.picker.value = this.shown ?? '';
    return experiments;
  }

  /** The table of one experiment ('': all; null: the newest with runs, the server picks). */
  private async showExperiment(experimentId: string | null): Promise<void> {
    this.shown = experimentId ?? '';
    const args = {
      ...(experimentId ? { experiment_ids: [experimentId] } : { newest: experimentId === null }),
      metrics_shown: SIDEBAR_METRICS,
      page_size: SIDEBAR_PAGE
    };
    let model: RemoteModel;
    try {
      performance.mark('nbtrack:create-table');
      model = await this.client.create('table', args);
      performance.mark('nbtrack:table-state');
    } catch (error) {
      this.slot.replaceChildren(el('div', { className: 'nbt-error' }, (error as Error).message));
      return;
    }
    if (experimentId !== null && this.shown !== experimentId) {
      this.client.close(model); // another experiment was picked meanwhile
      return;
    }
    this.table?.dispose();
    this.table = new PanelWidget(this.client, model);
    this.slot.replaceChildren();
    Widget.attach(this.table, this.slot);
  }
}

/** One run in the main area: its card in full, its curves, artifact previews, Open cell. */
export class RunView extends Widget {
  readonly note = el('div', { className: 'nbt-open-cell-note nbt-muted' });

  constructor(
    private client: PanelClient,
    readonly runId: string,
    openCell: (runId: string, note: HTMLElement) => Promise<void>
  ) {
    super();
    ensureStyle();
    this.addClass('nbt-run-view');
    const button = el('button', { className: 'nbt-button nbt-open-cell', type: 'button' }, 'Open cell');
    button.title = 'open the notebook that made this run, at its cell';
    button.onclick = () => void openCell(runId, this.note);
    this.node.append(el('div', { className: 'nbt nbt-toolbar nbt-run-tools' }, button, this.note));
    void this.load();
  }

  private async load(): Promise<void> {
    const details = await api(`runs/${this.runId}`);
    const hasCell = Boolean(details.cell);
    (this.node.querySelector('.nbt-open-cell') as HTMLButtonElement).disabled = !hasCell;
    if (!hasCell) {
      this.note.textContent = 'logged from code, not from a notebook cell';
    }
    const card = await this.client.create('run', { run_id: this.runId });
    this.add(new PanelWidget(this.client, card));
    if (Object.keys(details.run.data.metrics).length) {
      const curves = await this.client.create('curves', { run_ids: [this.runId] });
      this.add(new PanelWidget(this.client, curves));
    }
    this.node.append(artifactPreviews(this.runId, details.artifacts));
  }

  private add(widget: Widget): void {
    Widget.attach(widget, this.node);
  }

  dispose(): void {
    // the panels are attached to this node; dispose them with it
    super.dispose();
  }
}

const IMAGE = /\.(png|jpe?g|gif|svg|webp)$/i;
const TEXT = /\.(txt|json|ya?ml|csv|md|py|log|cfg|toml|ini|html|MLmodel)$|(^|\/)MLmodel$/i;
const TEXT_PREVIEW = 20_000;

function artifactPreviews(runId: string, artifacts: { path: string; size: number }[]): HTMLElement {
  const shown = artifacts.filter(a => IMAGE.test(a.path) || TEXT.test(a.path)).slice(0, 12);
  const box = el('div', { className: 'nbt nbt-artifact-previews' });
  if (!shown.length) {
    return box;
  }
  box.append(el('div', { className: 'nbt-subtitle' }, 'artifact previews'));
  for (const artifact of shown) {
    const url = apiUrl(`runs/${runId}/artifacts/${artifact.path.split('/').map(encodeURIComponent).join('/')}`);
    const head = el('div', { className: 'nbt-muted' }, artifact.path);
    if (IMAGE.test(artifact.path)) {
      box.append(el('figure', { className: 'nbt-artifact' }, head,
        el('img', { src: url, alt: artifact.path, loading: 'lazy' })));
    } else {
      const pre = el('pre', { className: 'nbt-pre nbt-details-block' }, '…');
      box.append(el('figure', { className: 'nbt-artifact' }, head, pre));
      void fetch(url, { credentials: 'same-origin' })
        .then(r => r.text())
        .then(text => {
          pre.textContent = text.length > TEXT_PREVIEW ? `${text.slice(0, TEXT_PREVIEW)}\n…` : text;
        });
    }
  }
  return box;
}

/** A panel of the server (compare, registry) as a main-area tab. */
export async function panelTab(
  client: PanelClient,
  kind: string,
  args: Record<string, unknown>,
  label: string
): Promise<MainAreaWidget<PanelWidget>> {
  ensureStyle();
  const model = await client.create(kind, args);
  const content = new PanelWidget(client, model);
  content.addClass('nbt-main-panel');
  const widget = new MainAreaWidget({ content });
  widget.title.label = label;
  widget.title.closable = true;
  return widget;
}

export function runTab(view: RunView, name: string): MainAreaWidget<RunView> {
  const widget = new MainAreaWidget({ content: view });
  widget.id = `nbtrack-run-${view.runId}`;
  widget.title.label = `Run ${name}`;
  widget.title.closable = true;
  widget.addClass('nbt-run-tab');
  return widget;
}

export { statusBadge };
