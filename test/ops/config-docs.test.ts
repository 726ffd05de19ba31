/**
 * docs/configuration.md and config.schema.json are generated from the zod schema
 * (scripts/gen-config-docs.ts). This regenerates both in memory and fails when the committed files
 * differ, so a schema change cannot ship with stale docs.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { generateConfigDocs, JSON_SCHEMA_PATH, MARKDOWN_PATH } from '../../scripts/gen-config-docs.js';

const STALE = 'docs/configuration.md is stale: run npm run docs:config';

describe('generated configuration docs', () => {
  const generated = generateConfigDocs();

  it('docs/configuration.md matches the schema', async () => {
    const committed = await readFile(MARKDOWN_PATH, 'utf8').catch(() => '');
    if (committed !== generated.markdown) expect.fail(STALE);
  });

  it('config.schema.json matches the schema', async () => {
    const committed = await readFile(JSON_SCHEMA_PATH, 'utf8').catch(() => '');
    if (committed !== generated.jsonSchema) expect.fail(`config.schema.json is stale: run npm run docs:config (${STALE})`);
  });

  it('documents every top-level key with its description, and durations with an input-form default', () => {
    for (const [key, schema] of Object.entries(configSchema.shape)) {
      expect(generated.markdown).toContain(`| \`${key}\` |`);
      const description = (schema as { description?: string }).description;
      if (description) expect(generated.markdown).toContain(description.replace(/\|/g, '\\|'));
    }
    const json = JSON.parse(generated.jsonSchema) as { properties: { release: { properties: { window: { default?: unknown } } } } };
    // window: duration('…').default(600_000) is documented as the input "10m", not dropped.
    expect(json.properties.release.properties.window.default).toBe('10m');
    expect(generated.markdown).toMatch(/#### rollback\.steps\[\] type: releases/);
    expect(generated.markdown).toMatch(/#### probes\[\] type: http/);
  });
});
