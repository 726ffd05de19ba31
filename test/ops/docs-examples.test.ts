/**
 * The worked examples in the docs are real configs: every ```yaml block with `type:` steps in
 * docs/strategies.md and docs/operations.md is wrapped into a minimal full config (its probes,
 * rules and rollback steps merged in) and validated with the same code the daemon runs. And
 * docs/strategies.md has an example for every strategy type the schema knows.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateConfig } from '../../src/config/load.js';
import { strategySchema } from '../../src/config/schema.js';

const root = resolve(import.meta.dirname, '../..');
const DOCS = ['docs/strategies.md', 'docs/operations.md'];

interface Example {
  file: string;
  line: number;
  text: string;
}

function yamlBlocks(file: string, markdown: string): Example[] {
  const blocks: Example[] = [];
  const pattern = /^```ya?ml\n([\s\S]*?)^```/gm;
  for (const match of markdown.matchAll(pattern)) {
    const line = markdown.slice(0, match.index).split('\n').length;
    blocks.push({ file, line, text: match[1]! });
  }
  return blocks;
}

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/** The smallest config the daemon accepts, with the example's sections merged in. */
function wrap(example: unknown): unknown {
  const base: Record<string, unknown> = {
    service: 'web',
    state_dir: '/var/lib/release-guard',
    probes: [{ name: 'health', type: 'http', url: 'http://127.0.0.1:3000/health', version_path: 'version' }],
    release: { version_probe: 'health' },
    rules: { health: { probe: 'health' } },
    rollback: { steps: [] as unknown[] },
    verification: { probe: 'health' },
  };
  const steps = (value: unknown) => ((base.rollback as { steps: unknown[] }).steps = value as unknown[]);
  if (Array.isArray(example)) steps(example);
  else if (isRecord(example) && typeof example.type === 'string') steps([example]);
  else if (isRecord(example)) {
    for (const [key, value] of Object.entries(example)) {
      if (key === 'probes' && Array.isArray(value)) base.probes = [...(base.probes as unknown[]), ...value];
      else if (isRecord(value) && isRecord(base[key])) base[key] = { ...(base[key] as object), ...value };
      else if (key === 'steps') steps(value);
      else base[key] = value;
    }
  }
  return base;
}

/** Every `type` of a rollback step the schema accepts. */
function strategyTypes(): string[] {
  return strategySchema.options.map((option) => String((option.shape.type as { value: unknown }).value));
}

describe('examples in the docs', async () => {
  const examples: Example[] = [];
  for (const file of DOCS) {
    const text = await readFile(join(root, file), 'utf8').catch(() => '');
    examples.push(...yamlBlocks(file, text).filter((block) => /^\s*-?\s*type:/m.test(block.text) || /\btype: /.test(block.text)));
  }

  it('finds the examples', () => {
    expect(examples.filter((e) => e.file === 'docs/strategies.md').length).toBeGreaterThanOrEqual(strategyTypes().length);
  });

  it.each(examples.map((e) => [`${e.file}:${e.line}`, e] as const))('%s is a valid config', (_where, example) => {
    const data = parse(example.text) as unknown;
    expect(() => validateConfig(wrap(data), `${example.file}:${example.line}`)).not.toThrow();
  });

  it('docs/strategies.md has a worked example and a section for every strategy type', async () => {
    const text = await readFile(join(root, 'docs/strategies.md'), 'utf8');
    const used = new Set<string>();
    for (const example of examples.filter((e) => e.file === 'docs/strategies.md')) {
      const config = wrap(parse(example.text)) as { rollback: { steps: { type: string }[] } };
      for (const step of config.rollback.steps) used.add(step.type);
    }
    for (const type of strategyTypes()) {
      expect(used, `no example of type ${type}`).toContain(type);
      expect(text, `no "## ${type}" section`).toMatch(new RegExp(`^## ${type}\\b`, 'm'));
    }
  });

  it('a broken example would be caught', () => {
    expect(() => validateConfig(wrap({ rollback: { steps: [{ type: 'releases', dir: '/srv/web' }] } }), 'x')).toThrow(/pm2_app/);
  });
});
