/**
 * Polling that runs only while someone can see the result: a panel polls while its widget is visible
 * (Lumino's after-show / after-hide, which a collapsed side area or a background tab sends to every
 * descendant) and while the browser tab is in front (document.visibilityState). A tick is skipped while
 * the previous one is still waiting for the server, so a slow answer never piles requests up.
 */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

export class Poller {
  private timer: number | null = null;
  private inFlight = false;
  private wanted = false;
  private readonly onVisibility = (): void => this.sync();

  constructor(
    private readonly tick: () => Promise<void>,
    public intervalMs: number
  ) {}

  /** Whether a timer is armed now (wanted, and the page is in front). */
  get running(): boolean {
    return this.timer !== null;
  }

  /** Poll from now on (one tick at once), as long as the page is visible. */
  start(): void {
    if (!this.wanted) {
      this.wanted = true;
      document.addEventListener('visibilitychange', this.onVisibility);
    }
    this.sync();
  }

  stop(): void {
    if (this.wanted) {
      this.wanted = false;
      document.removeEventListener('visibilitychange', this.onVisibility);
    }
    this.sync();
  }

  /** One tick now, unless one is already waiting for its answer. */
  async now(): Promise<void> {
    if (this.inFlight) {
      return;
    }
    this.inFlight = true;
    try {
      await this.tick();
    } finally {
      this.inFlight = false;
    }
  }

  private sync(): void {
    const armed = this.wanted && document.visibilityState !== 'hidden';
    if (armed && this.timer === null) {
      void this.now();
      this.timer = window.setInterval(() => void this.now(), this.intervalMs);
    } else if (!armed && this.timer !== null) {
      window.clearInterval(this.timer);
      this.timer = null;
    }
  }
}

/** A widget whose `refresh()` is polled every `intervalMs` while it is visible, and never otherwise. */
export abstract class PollingWidget extends Widget {
  protected readonly poller: Poller;

  constructor(intervalMs: number) {
    super();
    this.poller = new Poller(() => this.refresh(), intervalMs);
  }

  abstract refresh(): Promise<void>;

  get polling(): boolean {
    return this.poller.running;
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.poller.start();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this.poller.start();
    }
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.poller.stop();
  }

  protected onBeforeDetach(msg: Message): void {
    this.poller.stop();
    super.onBeforeDetach(msg);
  }

  dispose(): void {
    this.poller.stop();
    super.dispose();
  }
}
