// The status bar item: the run the current notebook's kernel is logging to, found by the
// server among the RUNNING runs written by that kernel's process (GET kernels/<id>/run).
import { INotebookTracker } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';
import { api } from './api';
import { Feed } from './feed';

interface ActiveRun {
  run_id: string;
  run_name: string;
  status: string;
  start_time: number;
}

export class ActiveRunItem extends Widget {
  private run: ActiveRun | null = null;
  private asked = 0;

  constructor(
    private tracker: INotebookTracker,
    feed: Feed,
    open: (runId: string) => void
  ) {
    super();
    this.addClass('nbt-status-item');
    this.node.title = 'nbtrack: the run this notebook is logging to (click to open it)';
    this.node.onclick = () => this.run && open(this.run.run_id);
    tracker.currentChanged.connect(() => void this.refresh());
    tracker.currentChanged.connect((_, panel) =>
      panel?.sessionContext.kernelChanged.connect(() => void this.refresh())
    );
    feed.subscribe(() => void this.refresh());
    void this.refresh();
  }

  async refresh(): Promise<void> {
    const mine = ++this.asked;
    const kernel = this.tracker.currentWidget?.sessionContext.session?.kernel;
    let run: ActiveRun | null = null;
    if (kernel) {
      try {
        run = (await api<{ run: ActiveRun | null }>(`kernels/${kernel.id}/run`)).run;
      } catch {
        run = null;
      }
    }
    if (mine !== this.asked) {
      return;
    }
    this.run = run;
    this.node.textContent = run ? `● nbtrack: ${run.run_name}` : '';
    this.node.classList.toggle('nbt-status-live', Boolean(run));
  }
}
