// The notebook's panel modules (js/*.js, plain ES modules shared with the inline widgets).
declare module '*/common.js' {
  export function ensureStyle(): void;
  export function statusBadge(status: string): HTMLElement;
  export const NBT_STYLE: string;
}

declare module '*.js' {
  const panel: { render(props: { model: unknown; el: HTMLElement }): (() => void) | void };
  export default panel;
}
