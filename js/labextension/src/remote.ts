// The notebook's panels, made in the server and drawn here by the same ES modules.
//
// A RemoteModel offers what an anywidget module uses of its model (get, set, save_changes,
// send, on, off, widget_manager); PanelClient is the page's one connection to the server's
// panels: it makes them, long-polls their messages (the state as the Python panel sends
// it) and posts back what the user does. See nbtrack/server/panels.py for the other side.
import { api, sleep } from './api';
import card from '../../card.js';
import compare from '../../compare.js';
import curves from '../../curves.js';
import register from '../../register.js';
import registry from '../../registry.js';
import table from '../../table.js';

type Listener = (...args: any[]) => void;
type Intercept = (model: RemoteModel, content: any) => boolean;

const MODULES: Record<string, typeof table> = {
  'nbtrack.widgets.table.RunTable': table,
  'nbtrack.widgets.card.RunCard': card,
  'nbtrack.widgets.curves.MetricCurves': curves,
  'nbtrack.widgets.compare.CompareRuns': compare,
  'nbtrack.widgets.registry.RegistryPanel': registry,
  'nbtrack.widgets.register.RegisterForm': register
};

/** The on/off/emit of a widget model, which the panels' modules listen with. */
export class Listeners {
  private listeners = new Map<string, Set<Listener>>();

  on(event: string, callback: Listener): void {
    if (!this.listeners.has(event)) {
      this.listeners.set(event, new Set());
    }
    this.listeners.get(event)!.add(callback);
  }

  off(event: string, callback: Listener): void {
    this.listeners.get(event)?.delete(callback);
  }

  emit(event: string, ...args: any[]): void {
    this.listeners.get(event)?.forEach(callback => callback(...args));
  }
}

export class RemoteModel extends Listeners {
  private dirty = new Set<string>();
  closed = false;

  constructor(
    readonly client: PanelClient,
    readonly id: string,
    private state: Record<string, any>
  ) {
    super();
  }

  get widget_manager(): PanelClient {
    return this.client;
  }

  get(name: string): any {
    return this.state[name];
  }

  set(name: string, value: any): void {
    this.state[name] = value;
    this.dirty.add(name);
    this.emit(`change:${name}`);
  }

  save_changes(): void {
    const changed: Record<string, any> = {};
    this.dirty.forEach(name => (changed[name] = this.state[name]));
    this.dirty.clear();
    void this.client.post(this, { method: 'update', state: changed, buffer_paths: [] });
  }

  send(content: any): void {
    if (!this.client.intercepted(this, content)) {
      void this.client.post(this, { method: 'custom', content });
    }
  }

  /** The server's state changed: take it, then tell the module. */
  update(state: Record<string, any>): void {
    Object.assign(this.state, state);
    for (const name of Object.keys(state)) {
      this.emit(`change:${name}`);
    }
  }
}

export interface PanelView {
  el: HTMLElement;
  remove(): void;
}

export class PanelClient {
  readonly id = `page-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  private models = new Map<string, RemoteModel>();
  private waiting = new Map<string, ((model: RemoteModel) => void)[]>();
  private intercepts: Intercept[] = [];
  private seq = 0;
  private running = false;

  /** Make a panel of `kind` (table, run, curves, compare, registry) in the server. */
  async create(kind: string, args: Record<string, unknown>): Promise<RemoteModel> {
    this.start();
    const made = await api<{ model_id: string }>('panels', 'POST', { client: this.id, kind, args });
    return this.get_model(made.model_id);
  }

  /** anywidget's widget_manager.get_model: the model once its state has arrived. */
  get_model(id: string): Promise<RemoteModel> {
    const found = this.models.get(id);
    if (found) {
      return Promise.resolve(found);
    }
    this.start();
    return new Promise(resolve => {
      this.waiting.set(id, [...(this.waiting.get(id) ?? []), resolve]);
    });
  }

  /** anywidget's widget_manager.create_view: the panel's own module draws it. */
  async create_view(model: RemoteModel): Promise<PanelView> {
    const module = MODULES[model.get('_anywidget_id')];
    const el = document.createElement('div');
    el.className = 'nbt-remote';
    if (!module) {
      el.textContent = `no view for ${model.get('_anywidget_id')}`;
      return { el, remove: () => el.remove() };
    }
    const cleanup = module.render({ model, el });
    return {
      el,
      remove: () => {
        if (typeof cleanup === 'function') {
          cleanup();
        }
        el.remove();
      }
    };
  }

  /** Let the page handle some intents itself (open a run in a tab, compare in a tab). */
  intercept(handler: Intercept): void {
    this.intercepts.push(handler);
  }

  intercepted(model: RemoteModel, content: any): boolean {
    return this.intercepts.some(handler => handler(model, content));
  }

  async post(model: RemoteModel, data: Record<string, unknown>): Promise<void> {
    try {
      await api(`panels/${model.id}`, 'POST', { client: this.id, data });
    } catch (error) {
      model.update({ error: `nbtrack server: ${(error as Error).message}` });
    }
  }

  close(model: RemoteModel): void {
    this.models.delete(model.id);
    void api(`panels/${model.id}?client=${this.id}`, 'DELETE').catch(() => undefined);
  }

  private start(): void {
    if (!this.running) {
      this.running = true;
      void this.poll();
    }
  }

  private async poll(): Promise<void> {
    for (;;) {
      try {
        const answer = await api<{ seq: number; messages: any[] }>(
          `panels?client=${this.id}&after=${this.seq}&timeout=25`
        );
        for (const message of answer.messages) {
          if (message.seq > this.seq) {
            this.receive(message);
          }
        }
        this.seq = Math.max(this.seq, answer.seq);
      } catch {
        await sleep(1000); // the server restarting: try again
      }
    }
  }

  private receive(message: any): void {
    const { comm_id: id, msg_type: kind, data } = message;
    if (kind === 'comm_open') {
      const model = new RemoteModel(this, id, withBuffers(data, message.buffers));
      this.models.set(id, model);
      (this.waiting.get(id) ?? []).forEach(resolve => resolve(model));
      this.waiting.delete(id);
      return;
    }
    const model = this.models.get(id);
    if (!model) {
      return;
    }
    if (kind === 'comm_close') {
      model.closed = true;
      this.models.delete(id);
    } else if (data.method === 'update') {
      model.update(withBuffers(data, message.buffers));
    } else if (data.method === 'custom') {
      model.emit('msg:custom', data.content);
    }
  }
}

/** The state with its binary parts (base64 here) put back at their paths as DataViews,
 * as a kernel's widget messages deliver them. */
function withBuffers(data: any, buffers: string[]): Record<string, any> {
  const state = data.state ?? {};
  (data.buffer_paths ?? []).forEach((path: (string | number)[], i: number) => {
    const bytes = Uint8Array.from(atob(buffers[i]), c => c.charCodeAt(0));
    let target = state;
    path.slice(0, -1).forEach(key => (target = target[key]));
    target[path[path.length - 1]] = new DataView(bytes.buffer);
  });
  return state;
}
