// The change feed (GET /nbtrack/api/changes, a long-poll): one loop per page, telling
// the sidebar and the status bar that runs, experiments or the registry changed.
import { api, sleep } from './api';

export interface Changes {
  seq: number;
  reset: boolean;
  added: string[];
  changed: string[];
  removed: string[];
  experiments: boolean;
  registry: boolean;
}

type Listener = (changes: Changes) => void;

export class Feed {
  private listeners = new Set<Listener>();
  private running = false;

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (!this.running) {
      this.running = true;
      void this.loop();
    }
    return () => this.listeners.delete(listener);
  }

  private async loop(): Promise<void> {
    let after = -1;
    for (;;) {
      try {
        const changes = await api<Changes>(`changes?after=${after}&timeout=25`);
        if (after >= 0 && changes.seq > after) {
          this.listeners.forEach(listener => listener(changes));
        }
        after = changes.seq;
      } catch {
        await sleep(2000);
      }
    }
  }
}
