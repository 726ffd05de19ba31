/**
 * The schema a stored state must match before the guard uses it. `state.json` or the Redis state
 * key may be corrupt, written by another program, or edited by hand, and the state decides what
 * the guard does next (resume a rollback, which version is known-good, whose data to restore):
 * it is validated as a whole on load and refused with its first problems, never half-used. The
 * versions in it become paths and arguments, so they must be safe identifiers (core/versions.ts).
 *
 * Kept in sync with GuardState (src/core/types.ts) by the compiler: each schema `satisfies
 * z.ZodType<T>`, and SameKeys below fails typecheck when a field is added to a type without its
 * schema (or the other way round).
 */
import { z } from 'zod';
import { RULE_NAMES } from '../core/rules.js';
import type { SequentialEvidence } from '../core/sequential.js';
import { PHASES, TRIGGERS, type Breach, type VerificationCheckOutcome, type DeploymentEntry, type DrillInProgress, type GuardState, type Phase, type Release, type RollbackInProgress, type RuleName, type RuleVerdict, type StepRecord } from '../core/types.js';
import { versionProblem } from '../core/versions.js';
import { WINDOW_ID, windowId } from '../core/windows.js';

const version = z.string().superRefine((value, ctx) => {
  const problem = versionProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const time = z.number().finite();
const ruleName = z.enum(RULE_NAMES as [RuleName, ...RuleName[]]);

const release = z.strictObject({
  id: z.string().regex(WINDOW_ID, 'is not a release window id'),
  version,
  previous: version.nullable(),
  startedAt: time,
  deployedBy: z.string(),
  source: z.enum(['detected', 'manual']),
}) satisfies z.ZodType<Release>;

const verdict = z.strictObject({
  rule: ruleName,
  outcome: z.enum(['pass', 'fail', 'inconclusive', 'error', 'skipped']),
  // JSON turns NaN and Infinity into null.
  observed: z.number().nullable(),
  threshold: z.number().nullable().transform((n) => n ?? Number.POSITIVE_INFINITY),
  unit: z.enum(['failures', 'ratio', 'ms', 'x']),
  message: z.string(),
  since: time.optional(),
  // Shown in records only; its numbers may be Infinity (null once stored).
  evidence: z.custom<SequentialEvidence>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), 'must be an object').optional(),
}) satisfies z.ZodType<RuleVerdict, unknown>;

const breach = z.strictObject({
  trigger: z.enum(TRIGGERS),
  rules: z.array(ruleName),
  reason: z.string(),
  verdicts: z.array(verdict),
  decidedAt: time,
  faultAt: time,
}) satisfies z.ZodType<Breach, unknown>;

const step = z.strictObject({
  index: z.number().int().min(0),
  type: z.string(),
  description: z.string(),
  startedAt: time,
  finishedAt: time.optional(),
  ok: z.boolean().optional(),
  error: z.string().optional(),
  output: z.array(z.string()),
  attempt: z.number().int().min(1),
}) satisfies z.ZodType<StepRecord>;

const verificationCheck = z.strictObject({ name: z.string(), type: z.string(), ok: z.boolean(), detail: z.string(), durationMs: z.number() }) satisfies z.ZodType<VerificationCheckOutcome>;

const rollback = z.strictObject({
  from: version,
  to: version,
  breach,
  startedAt: time,
  attempt: z.number().int().min(1),
  steps: z.array(step),
  executedAt: time.optional(),
  verifyPasses: z.number().int().min(0),
  verifyEvidence: z.strictObject({ passLaunches: z.array(time), failedLaunch: time.nullable() }).optional(),
  suite: z.strictObject({ startedAt: time, results: z.array(verificationCheck).optional() }).optional(),
}) satisfies z.ZodType<RollbackInProgress, unknown>;

const deployment = z.strictObject({
  version,
  at: time,
  status: z.enum(['success', 'failed', 'rolled_back']),
  deployedBy: z.string(),
  note: z.string().optional(),
}) satisfies z.ZodType<DeploymentEntry>;

const drill = z.strictObject({ from: version, to: version, startedAt: time, by: z.string() }) satisfies z.ZodType<DrillInProgress>;

/** What every phase holds (GuardStateBase). */
const base = {
  schemaVersion: z.literal(1),
  since: time,
  paused: z.boolean(),
  stable: version.nullable(),
  running: version.nullable(),
  wouldRollBack: breach.nullable(),
  pending: z.strictObject({ breach, to: version, until: time }).nullable(),
  vetoed: z.array(version),
  breached: z.array(ruleName),
  blind: z.array(ruleName),
  autoRollbacks: z.array(z.strictObject({ version, at: time, finishedAt: time.optional() })),
  history: z.array(deployment),
  fleetWait: z.strictObject({ version, since: time }).optional(),
  lastWindow: z.strictObject({ id: z.string().regex(WINDOW_ID, 'is not a release window id'), version }).optional(),
};

/**
 * What any state holds, whatever its phase (other keys pass): a state whose phase is missing or
 * unknown matches no phase's schema, so its fields are reported against this instead — a
 * foreign JSON file is told by all it lacks, not only by its phase.
 */
const { schemaVersion, ...afterVersion } = base;
const anyPhase = z.looseObject({ schemaVersion, phase: z.enum(PHASES as [Phase, ...Phase[]]), ...afterVersion });

/** One phase: what it holds besides the base (PhaseState in core/types.ts). A field the phase lacks is null. */
const inPhase = <P extends Phase, R extends z.ZodType, B extends z.ZodType, D extends z.ZodType, F extends z.ZodType>(phase: P, fields: { release: R; rollback: B; drill: D; failure: F }) =>
  z.strictObject({ ...base, phase: z.literal(phase), ...fields });

const none = z.null();

/** The stored state: one shape per phase, told apart by `phase`. */
export const guardStateSchema = z.discriminatedUnion(
  'phase',
  [
    inPhase('stable', { release: none, rollback: none, drill: drill.nullable(), failure: none }),
    inPhase('guarding', { release, rollback: none, drill: none, failure: none }),
    inPhase('rolling_back', { release, rollback, drill: none, failure: none }),
    inPhase('verifying', { release, rollback, drill: none, failure: none }),
    inPhase('rolled_back', { release, rollback, drill: drill.nullable(), failure: none }),
    inPhase('promoted', { release, rollback: none, drill: drill.nullable(), failure: none }),
    inPhase('failed', { release, rollback: rollback.nullable(), drill: none, failure: z.string() }),
  ],
  // The same words as an enum's, naming the phases there are.
  { error: (issue) => (issue.code === 'invalid_union' ? `Invalid option: expected one of ${PHASES.map((p) => JSON.stringify(p)).join('|')}` : undefined) },
) satisfies z.ZodType<GuardState, unknown>;

// ---- Drift check: the schemas name exactly the fields of the types (typecheck fails otherwise) ----
type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never] ? true : { missing: Exclude<keyof A, keyof B>; extra: Exclude<keyof B, keyof A> };
const drift: [
  SameKeys<GuardState, z.input<typeof guardStateSchema>>,
  SameKeys<Release, z.input<typeof release>>,
  SameKeys<RollbackInProgress, z.input<typeof rollback>>,
  SameKeys<Breach, z.input<typeof breach>>,
  SameKeys<RuleVerdict, z.input<typeof verdict>>,
  SameKeys<StepRecord, z.input<typeof step>>,
  SameKeys<DeploymentEntry, z.input<typeof deployment>>,
  SameKeys<VerificationCheckOutcome, z.input<typeof verificationCheck>>,
  SameKeys<DrillInProgress, z.input<typeof drill>>,
  // Every phase of GuardState has its schema.
  GuardState extends z.output<typeof guardStateSchema> ? true : 'a phase of GuardState has no schema',
] = [true, true, true, true, true, true, true, true, true, true];
void drift;

/** States saved before release windows had ids: give the release the id it would have had. */
function addWindowIds(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null) return raw;
  const state = raw as Record<string, unknown>;
  const rel = state.release as Record<string, unknown> | null | undefined;
  if (!rel || typeof rel !== 'object' || rel.id !== undefined || typeof rel.startedAt !== 'number' || typeof rel.version !== 'string') return raw;
  const id = windowId(rel.startedAt, rel.version);
  return { ...state, release: { ...rel, id }, lastWindow: state.lastWindow ?? { id, version: rel.version } };
}

/** The first few problems of a refused state, each `path: message`. */
function problemsOf(error: z.ZodError, max = 3): string {
  const lines = error.issues.slice(0, max).map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(top level)'}: ${issue.message}`);
  const more = error.issues.length > max ? `; … ${error.issues.length - max} more` : '';
  return `${lines.join('; ')}${more}`;
}

/**
 * Validates a parsed stored state. Returns it (with window ids added to an older state), or throws
 * an Error whose message names `where` (the file or key), the first problems, and what to do.
 */
export function parseStoredState(raw: unknown, where: string): GuardState {
  if (typeof raw === 'object' && raw !== null && 'schemaVersion' in raw && (raw as { schemaVersion: unknown }).schemaVersion !== 1) {
    throw new StateRefused(`${where} has schemaVersion ${JSON.stringify((raw as { schemaVersion: unknown }).schemaVersion)}; this release-guard reads 1`, 'store_version');
  }
  const input = addWindowIds(raw);
  const parsed = guardStateSchema.safeParse(input);
  if (!parsed.success) {
    const common = anyPhase.safeParse(input);
    const error = !common.success && parsed.error.issues.some((issue) => issue.code === 'invalid_union' && issue.path.join('.') === 'phase') ? common.error : parsed.error;
    throw new StateRefused(`${where} is not a valid release-guard state (${problemsOf(error)}); it was left untouched: move it aside to start fresh`, 'store_corrupt');
  }
  return parsed.data;
}

export class StateRefused extends Error {
  constructor(
    message: string,
    readonly code: 'store_version' | 'store_corrupt',
  ) {
    super(message);
  }
}
