/**
 * Real headless Chromium for dashboard tests (Debian's `chromium`, driven by playwright-core).
 * A missing browser is a failure, not a skip: CI installs it (`.ci/apt-packages`).
 * Screenshots go to test-output/dashboard/ (gitignored).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { repoRoot } from '../support/index.js';

export const CHROMIUM = process.env.SKEIN_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOTS = join(repoRoot, 'test-output', 'dashboard');

export interface Headless {
  readonly context: BrowserContext;
  newPage(): Promise<Page>;
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

export async function launchChromium(): Promise<Headless> {
  if (!existsSync(CHROMIUM)) throw new Error(`chromium not found at ${CHROMIUM}: apt-get install -y chromium (or set SKEIN_CHROMIUM)`);
  const userDataDir = mkdtempSync(join(tmpdir(), 'skein-chromium-'));
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
  // A fresh profile each run, and a laptop-sized screen.
  const context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, args, headless: true, viewport: { width: 1366, height: 820 } });
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    context,
    newPage: () => context.newPage(),
    async screenshot(page, name) {
      const path = join(SCREENSHOTS, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
