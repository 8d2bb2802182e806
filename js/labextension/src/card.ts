// The run card under a %%track cell, drawn from a plain output instead of a widget.
//
// A card widget costs the kernel a comm per tracked cell. The kernel asks each page
// whether it draws cards itself (comm target "nbtrack.frontend", see
// nbtrack/widgets/frontend.py): this extension answers yes, and the kernel then sends the
// card's state as an application/vnd.nbtrack.run-card+json output. card.js draws it here
// over a local model; a button pressed asks the kernel (comm target "nbtrack.card") for
// the card's widget, which then replaces the drawing and does what was pressed.
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { MimeModel, IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';
import card from '../../card.js';
import { Listeners } from './remote';

export const CARD_MIME = 'application/vnd.nbtrack.run-card+json';
const FRONTEND_TARGET = 'nbtrack.frontend';
const CARD_TARGET = 'nbtrack.card';
const WIDGET_VIEW = 'application/vnd.jupyter.widget-view+json';

interface PlainCard {
  run_id: string;
  store: string;
  state: Record<string, any>;
}

/** What card.js uses of a widget model, over the output's state; an intent (a button
 * pressed) goes to `onIntent` instead of a kernel. */
class LocalModel extends Listeners {
  constructor(
    private state: Record<string, any>,
    private onIntent: (content: any) => void
  ) {
    super();
  }

  readonly widget_manager = {
    get_model: () => Promise.reject(new Error('a plain card has no child widgets'))
  };

  get(name: string): any {
    return this.state[name];
  }

  set(name: string, value: any): void {
    this.state[name] = value;
    this.emit(`change:${name}`);
  }

  save_changes(): void {
    // Nothing to save: the card's state lives in the output.
  }

  send(content: any): void {
    this.onIntent(content);
  }
}

/** Draws a plain card; becomes the card's widget on the first button pressed. */
class CardRenderer extends Widget implements IRenderMime.IRenderer {
  private cleanup: (() => void) | void = undefined;
  private model: LocalModel | null = null;
  private upgrading = false;

  constructor(private tracker: INotebookTracker) {
    super();
    this.addClass('nbt-plain-card');
  }

  async renderModel(output: IRenderMime.IMimeModel): Promise<void> {
    const plain = output.data[CARD_MIME] as unknown as PlainCard;
    this.dropDrawing();
    this.model = new LocalModel({ ...plain.state }, content => void this.upgrade(plain, content));
    const el = document.createElement('div');
    this.node.replaceChildren(el);
    this.cleanup = card.render({ model: this.model, el });
  }

  dispose(): void {
    this.dropDrawing();
    super.dispose();
  }

  private dropDrawing(): void {
    if (typeof this.cleanup === 'function') {
      this.cleanup();
    }
    this.cleanup = undefined;
  }

  /** Ask the kernel for the card's widget, doing `intent` on it, and draw that instead. */
  private async upgrade(plain: PlainCard, intent: any): Promise<void> {
    if (this.upgrading) {
      return;
    }
    const panel = this.tracker.find(p => p.node.contains(this.node));
    const kernel = panel?.sessionContext.session?.kernel;
    if (!panel || !kernel) {
      this.model?.set('error', 'Start the notebook\'s kernel (with %load_ext nbtrack) to use the card\'s buttons.');
      return;
    }
    this.upgrading = true;
    try {
      const modelId = await askForWidget(kernel, { run_id: plain.run_id, store: plain.store, intent });
      await this.drawWidget(panel, modelId);
    } catch (error) {
      this.model?.set('error', `${(error as Error).message}`);
    } finally {
      this.upgrading = false;
    }
  }

  private async drawWidget(panel: NotebookPanel, modelId: string): Promise<void> {
    const renderer = panel.content.rendermime.createRenderer(WIDGET_VIEW);
    const view = { model_id: modelId, version_major: 2, version_minor: 1 };
    await renderer.renderModel(new MimeModel({ data: { [WIDGET_VIEW]: view } }));
    this.dropDrawing();
    this.node.replaceChildren();
    Widget.attach(renderer, this.node);
    this.disposed.connect(() => renderer.dispose());
  }
}

/** The kernel's answer to a request for a card's widget: its model id. */
function askForWidget(kernel: Kernel.IKernelConnection, request: Record<string, unknown>): Promise<string> {
  return new Promise((resolve, reject) => {
    const comm = kernel.createComm(CARD_TARGET);
    let answered = false;
    comm.onMsg = msg => {
      answered = true;
      const data = msg.content.data as { model_id?: string; error?: string };
      if (data.model_id) {
        resolve(data.model_id);
      } else {
        reject(new Error(data.error ?? 'the kernel made no card'));
      }
    };
    comm.onClose = () => {
      if (!answered) {
        reject(new Error('The kernel has no nbtrack: run %load_ext nbtrack, then press again.'));
      }
    };
    comm.open(request as any);
  });
}

/** Tell every notebook's kernel that this page draws plain cards, and draw them. */
export function drawPlainCards(rendermime: IRenderMimeRegistry, tracker: INotebookTracker): void {
  rendermime.addFactory(
    { safe: true, mimeTypes: [CARD_MIME], createRenderer: () => new CardRenderer(tracker) },
    10 // before text/html, the card's static form
  );
  const answer = (kernel: Kernel.IKernelConnection | null | undefined) => {
    kernel?.registerCommTarget(FRONTEND_TARGET, comm => {
      comm.send({ draws: [CARD_MIME] });
    });
  };
  tracker.widgetAdded.connect((_, panel) => {
    const session = panel.sessionContext;
    answer(session.session?.kernel);
    session.kernelChanged.connect((_, change) => answer(change.newValue));
  });
}
