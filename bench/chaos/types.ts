// The contract every chaos scenario follows, so `npm run chaos` (bench/chaos/run.ts) can run
// them all and print one table. One scenario per module in bench/chaos/<name>.ts, exporting
// `run(ctx): Promise<ChaosRow[]>`; run.ts lists them in its registry.

/** One line of the chaos table: what was tried, what was measured, against which target. */
export interface ChaosRow {
  /** The issue item the row checks, e.g. "hostile /metrics: peak guard RSS". */
  item: string;
  /** The input tried / the kill point, e.g. "8 MB body, 500k series, scrape every 250 ms". */
  input: string;
  /** What was measured, with units, e.g. "94 MB (median of 3)". */
  measured: string;
  /** The target, e.g. "≤ 120 MB", "0", "never 2". */
  target: string;
  /** Whether the measured value met the target. */
  ok: boolean;
}

/** What the runner hands each scenario. */
export interface ChaosContext {
  /** Repo root (where dist/ and package.json live). */
  root: string;
  /** A fresh scratch directory for this scenario (deleted by the runner afterwards unless kept). */
  workDir: string;
  /** Quick mode: fewer repetitions and shorter runs, for the test that keeps the runner from rotting. */
  quick: boolean;
  /** Progress lines (to stderr), so a long run shows it is alive. */
  log(line: string): void;
}

/** A registered scenario: its name (for `--only NAME`) and its run function. */
export interface ChaosScenario {
  name: string;
  run(ctx: ChaosContext): Promise<ChaosRow[]>;
}
