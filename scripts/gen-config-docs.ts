/**
 * Generates `docs/configuration.md` and `config.schema.json` from the zod config schema
 * (src/config/schema.ts), the one source of the config's keys, types, defaults and descriptions.
 *
 *   npm run docs:config            # rewrite both files
 *   npm run docs:config -- --check # exit 1 when either file is stale (what the test checks)
 *
 * Generic on purpose: nothing here names a config key. The JSON Schema comes from
 * `z.toJSONSchema(configSchema, { io: 'input' })` (what a user writes, before defaults and
 * transforms); the Markdown is a walk over that JSON Schema. Two fix-ups for transforming keys:
 * zod drops the default of a transforming schema in input mode (the default is an output value),
 * so it is put back when it is also a valid input; and a key that turns `"5s"` into 5000 is
 * recognised by behaviour (it parses a few sample durations) and documented as a duration.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { formatDuration } from '../src/config/duration.js';
import { configSchema } from '../src/config/schema.js';
import { acceptedProbeTypes, PROBE_RULES, readingOf, SAMPLE_VALUES } from '../src/core/rule-catalog.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const MARKDOWN_PATH = join(ROOT, 'docs', 'configuration.md');
export const JSON_SCHEMA_PATH = join(ROOT, 'config.schema.json');

/** The JSON Schema subset this generator reads. */
export interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  const?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  minItems?: number;
  pattern?: string;
  'x-duration'?: boolean;
  [key: string]: unknown;
}

/** Minimal view of zod 4 internals used to recognise transforming schemas. */
interface ZodInternals {
  _zod: { def: { type: string; innerType?: z.ZodType; defaultValue?: unknown } };
  safeParse(value: unknown): { success: boolean; data?: unknown };
}

/** A transform that reads `250ms` as 250 and `2m` as 120000 is a duration, whatever its key. */
function isDuration(schema: z.ZodType): boolean {
  const zod = schema as unknown as ZodInternals;
  const samples: [string | number, number][] = [['250ms', 250], ['5s', 5000], ['2m', 120_000], [1500, 1500]];
  return samples.every(([input, ms]) => {
    const result = zod.safeParse(input);
    return result.success && result.data === ms;
  });
}

function unwrapDefault(schema: z.ZodType): { inner: z.ZodType; value: unknown } | null {
  const def = (schema as unknown as ZodInternals)._zod.def;
  if (def.type !== 'default' || def.innerType === undefined) return null;
  return { inner: def.innerType, value: def.defaultValue };
}

function isTransforming(schema: z.ZodType): boolean {
  const def = (schema as unknown as ZodInternals)._zod.def;
  if (def.type === 'pipe' || def.type === 'transform') return true;
  if (def.innerType !== undefined && ['default', 'optional', 'nullable', 'prefault', 'readonly'].includes(def.type)) {
    return isTransforming(def.innerType);
  }
  return false;
}

/** The config's JSON Schema (input side: what goes in the YAML file). */
export function buildJsonSchema(): JsonSchema {
  const schema = z.toJSONSchema(configSchema, {
    io: 'input',
    target: 'draft-2020-12',
    override: ({ zodSchema, jsonSchema }) => {
      const json = jsonSchema as JsonSchema;
      const zod = zodSchema as unknown as z.ZodType;
      const defaulted = unwrapDefault(zod);
      const target = defaulted?.inner ?? zod;
      const duration = isTransforming(target) && isDuration(target);
      if (duration) json['x-duration'] = true;
      if (defaulted !== null && json.default === undefined) {
        // Put the default back in its input form, if the schema accepts it and gives it back.
        const input = duration && typeof defaulted.value === 'number' ? formatDuration(defaulted.value) : defaulted.value;
        const back = (target as unknown as ZodInternals).safeParse(input);
        if (back.success && JSON.stringify(back.data) === JSON.stringify(defaulted.value)) json.default = input;
      }
    },
  }) as JsonSchema;
  // A plain tree (no shared objects), so each section is its own node.
  const tree = JSON.parse(JSON.stringify(schema)) as JsonSchema;
  return {
    $schema: tree.$schema,
    $id: 'https://github.com/release-guard/release-guard/config.schema.json',
    title: 'release-guard configuration',
    description: 'Generated from src/config/schema.ts by `npm run docs:config`; do not edit.',
    ...tree,
  };
}

// ---------------------------------------------------------------------------------------------
// Markdown

interface Section {
  /** Heading text, e.g. `server` or `probes[] type: http`. */
  title: string;
  /** The key path as written in YAML, e.g. `rules.health` or `probes[]`. */
  path: string;
  level: number;
  schema: JsonSchema;
  /** Set for a member of a discriminated list: `type: http`. */
  variant?: string;
}

const code = (text: string) => `\`${text.replace(/`/g, 'ˋ')}\``;
const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n+/g, ' ').trim();

function anchor(title: string): string {
  // GitHub's slug: lower case, drop punctuation except - and _, spaces to -.
  return title
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The members of a discriminated union: each an object with one `const` property. */
function variants(schema: JsonSchema): { key: string; value: string; schema: JsonSchema }[] | null {
  const members = schema.oneOf ?? schema.anyOf;
  if (!members || members.length === 0) return null;
  const found: { key: string; value: string; schema: JsonSchema }[] = [];
  for (const member of members) {
    const entry = Object.entries(member.properties ?? {}).find(([, prop]) => prop.const !== undefined);
    if (!entry) return null;
    found.push({ key: entry[0], value: String(entry[1].const), schema: member });
  }
  return found;
}

function isSection(schema: JsonSchema): boolean {
  return schema.properties !== undefined && Object.keys(schema.properties).length > 0;
}

function typeOf(schema: JsonSchema, childSection: (s: JsonSchema) => string | null): string {
  if (schema['x-duration']) return 'duration (`250ms`, `5s`, `2m`, `1h` or milliseconds)';
  if (schema.const !== undefined) return code(JSON.stringify(schema.const));
  if (schema.enum) return `one of ${schema.enum.map((v) => code(String(v))).join(', ')}`;
  const link = childSection(schema);
  if (link !== null) return link;
  const members = schema.anyOf ?? schema.oneOf;
  if (members) return members.map((m) => typeOf(m, childSection)).join(' or ');
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  return (
    types
      .map((type) => {
        if (type === 'array') return `list of ${schema.items ? typeOf(schema.items, childSection) : 'values'}`;
        if (type === 'object') {
          const value = typeof schema.additionalProperties === 'object' ? typeOf(schema.additionalProperties, childSection) : 'value';
          const key = schema.propertyNames?.pattern ? `key matching ${code(schema.propertyNames.pattern)}` : schema.propertyNames?.enum ? `key (${schema.propertyNames.enum.map((v) => code(String(v))).join(', ')})` : 'key';
          return `map of ${key} → ${value}`;
        }
        return type;
      })
      .join(' or ') || 'any'
  );
}

function constraints(schema: JsonSchema): string {
  const parts: string[] = [];
  if (schema.minimum !== undefined && schema.minimum > Number.MIN_SAFE_INTEGER) parts.push(`≥ ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) parts.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined && schema.maximum < Number.MAX_SAFE_INTEGER) parts.push(`≤ ${schema.maximum}`);
  if (schema.exclusiveMaximum !== undefined) parts.push(`< ${schema.exclusiveMaximum}`);
  if (schema.minItems !== undefined && schema.minItems > 0) parts.push(`at least ${schema.minItems} item${schema.minItems === 1 ? '' : 's'}`);
  if (schema.pattern !== undefined) parts.push(`matches ${code(schema.pattern)}`);
  return parts.join(', ');
}

function formatDefault(schema: JsonSchema): string {
  if (schema.default === undefined) return '';
  return code(JSON.stringify(schema.default));
}

/**
 * A nullable key (`anyOf: [X, null]`) carries its description and default inside X: lift them so
 * the table shows them.
 */
function hoisted(schema: JsonSchema): JsonSchema {
  const members = schema.anyOf ?? schema.oneOf;
  const nonNull = members?.filter((m) => m.type !== 'null');
  if (!members || nonNull?.length !== 1 || members.length === nonNull.length) return schema;
  const [inner] = nonNull;
  return {
    ...schema,
    ...(schema.description === undefined && inner?.description !== undefined ? { description: inner.description } : {}),
    ...(schema.default === undefined && inner?.default !== undefined ? { default: inner.default } : {}),
  };
}

/** Markdown for the whole schema. */
export function renderMarkdown(schema: JsonSchema): string {
  const sections: Section[] = [];
  const byPath = new Map<JsonSchema, Section>();

  // Collect every section first, so tables can link to them.
  const collect = (node: JsonSchema, path: string, title: string, level: number, variant?: string) => {
    const section: Section = { title, path, level, schema: node, ...(variant !== undefined ? { variant } : {}) };
    sections.push(section);
    byPath.set(node, section);
    for (const [key, raw] of Object.entries(node.properties ?? {})) {
      const childPath = path === '' ? key : `${path}.${key}`;
      visitValue(raw, childPath, Math.min(level + 1, 4));
    }
  };
  const visitValue = (node: JsonSchema, path: string, level: number) => {
    const members = node.anyOf ?? node.oneOf;
    const nonNull = members?.filter((m) => m.type !== 'null');
    if (nonNull && nonNull.length === 1 && nonNull[0]) return visitValue(nonNull[0], path, level);
    if (isSection(node)) return collect(node, path, path, level);
    const alternatives = members ? variants(node) : null;
    if (alternatives) {
      // A key holding one of several shapes, chosen by a discriminator (e.g. `store: {type: redis, …}`).
      const union: Section = { title: path, path, level, schema: node };
      sections.push(union);
      byPath.set(node, union);
      for (const kind of alternatives) collect(kind.schema, path, `${path} ${kind.key}: ${kind.value}`, Math.min(level + 1, 4), `${kind.key}: ${kind.value}`);
      return;
    }
    if (node.items) {
      const kinds = variants(node.items);
      if (kinds) {
        const listPath = `${path}[]`;
        const list: Section = { title: listPath, path: listPath, level, schema: node.items };
        sections.push(list);
        byPath.set(node.items, list);
        for (const kind of kinds) collect(kind.schema, listPath, `${listPath} ${kind.key}: ${kind.value}`, Math.min(level + 1, 4), `${kind.key}: ${kind.value}`);
        return;
      }
      if (isSection(node.items)) return collect(node.items, `${path}[]`, `${path}[]`, level);
    }
  };
  collect(schema, '', 'Top-level keys', 2);

  const linkTo = (node: JsonSchema): string | null => {
    const target = byPath.get(node);
    return target ? `[${target.variant === undefined ? 'section' : target.variant}](#${anchor(target.title)})` : null;
  };
  const childLink = (node: JsonSchema): string | null => {
    const direct = byPath.get(node);
    if (direct && direct.title !== 'Top-level keys') return `section [${direct.title}](#${anchor(direct.title)})`;
    if (node.items && byPath.has(node.items)) {
      const list = byPath.get(node.items)!;
      const kinds = variants(node.items);
      if (kinds) return `list of [${list.title}](#${anchor(list.title)}) items (${kinds.map((k) => code(k.value)).join(', ')})`;
      return `list of [${list.title}](#${anchor(list.title)}) items`;
    }
    return null;
  };

  const out: string[] = [
    '<!-- Generated from src/config/schema.ts by `npm run docs:config`. Do not edit: edit the schema and regenerate. -->',
    '',
    '# Configuration reference',
    '',
    'release-guard reads one YAML file (`release-guard start --config FILE`; check it with',
    '`release-guard config validate FILE`). This page lists every key with its type, default and',
    'meaning. Unknown keys are errors, never silently ignored. The same information is in',
    '[`config.schema.json`](../config.schema.json) (JSON Schema 2020-12) for editors: with the YAML',
    'language server, put `# yaml-language-server: $schema=../config.schema.json` at the top of a file.',
    '',
    '- **Durations** are written `250ms`, `5s`, `2m`, `1h`, or as a number of milliseconds.',
    '- **Ratios** are fractions: `0.05` is 5 %.',
    '- A key without a default and marked *required* must be set; an optional section that is left',
    '  out is simply not used.',
    '',
    '## Contents',
    '',
  ];
  for (const section of sections) {
    if (section.level > 3) continue;
    out.push(`${'  '.repeat(section.level - 2)}- [${section.title}](#${anchor(section.title)})`);
  }
  out.push('');

  for (const section of sections) {
    const { schema: node } = section;
    out.push(`${'#'.repeat(section.level)} ${section.title}`, '');
    if (section.path !== '' && node.description) out.push(`${cell(node.description)}`, '');
    const kinds = node.oneOf || node.anyOf ? variants(node) : null;
    if (kinds) {
      out.push(
        `${section.path.endsWith('[]') ? 'Each item is' : 'It is'} one of the following, chosen by its ${code(kinds[0]?.key ?? 'type')} key:`,
        '',
        ...kinds.map((k) => `- ${linkTo(k.schema) ?? code(k.value)}${k.schema.description ? `: ${cell(k.schema.description)}` : ''}`),
        '',
      );
      continue;
    }
    const properties = Object.entries(node.properties ?? {});
    if (properties.length === 0) continue;
    const required = new Set(node.required ?? []);
    out.push('| key | type | default | description |', '| --- | --- | --- | --- |');
    for (const [key, raw] of properties) {
      const prop = hoisted(raw);
      const limits = constraints(prop);
      const type = typeOf(prop, childLink) + (limits ? `; ${limits}` : '');
      const fallback = formatDefault(prop) || (required.has(key) ? '**required**' : 'optional');
      out.push(`| ${code(key)} | ${cell(type)} | ${cell(fallback)} | ${cell(prop.description ?? '')} |`);
    }
    out.push('');
  }
  return `${out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}

/** Which probe types each rule reads, what it reads of them and how many samples it needs: the rule catalog (src/core/rule-catalog.ts). */
export function renderRuleCatalog(): string {
  const out = [
    '## Rules and the probes they read',
    '',
    'Generated from the rule catalog (`src/core/rule-catalog.ts`). A rule naming a probe of another type is refused when the config is loaded.',
    '',
    '| rule | probe type | judges | sample values read | default `min_samples` |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const rule of PROBE_RULES) {
    for (const type of acceptedProbeTypes(rule)) {
      const reading = readingOf(rule, type);
      if (!reading) continue;
      const values = reading.values.length > 0 ? reading.values.map(code).join(', ') : reading.kind === 'traffic' ? 'request counts' : 'pass / fail';
      out.push(`| ${code(rule)} | ${code(type)} | ${cell(reading.judges)} | ${values} | ${reading.minSamples ?? '—'} |`);
    }
  }
  out.push('', '### Sample values', '', '| name | meaning |', '| --- | --- |');
  for (const [name, meaning] of Object.entries(SAMPLE_VALUES)) out.push(`| ${code(name)} | ${cell(meaning)} |`);
  return `${out.join('\n')}\n`;
}

/** Both generated files, as they should be on disk. */
export function generateConfigDocs(): { markdown: string; jsonSchema: string } {
  const schema = buildJsonSchema();
  return { markdown: `${renderMarkdown(schema)}\n${renderRuleCatalog()}`, jsonSchema: `${JSON.stringify(schema, null, 2)}\n` };
}

/** The generated files that differ from what is on disk (paths relative to the repository). */
export async function staleFiles(): Promise<string[]> {
  const { markdown, jsonSchema } = generateConfigDocs();
  const stale: string[] = [];
  for (const [file, wanted] of [[MARKDOWN_PATH, markdown], [JSON_SCHEMA_PATH, jsonSchema]] as const) {
    const current = await readFile(file, 'utf8').catch(() => null);
    if (current !== wanted) stale.push(file.slice(ROOT.length + 1));
  }
  return stale;
}

async function run(argv: string[]): Promise<number> {
  if (argv.includes('--check')) {
    const stale = await staleFiles();
    for (const file of stale) process.stderr.write(`${file} is stale: run npm run docs:config\n`);
    return stale.length === 0 ? 0 : 1;
  }
  const { markdown, jsonSchema } = generateConfigDocs();
  await writeFile(MARKDOWN_PATH, markdown);
  await writeFile(JSON_SCHEMA_PATH, jsonSchema);
  process.stdout.write(`wrote ${MARKDOWN_PATH.slice(ROOT.length + 1)} and ${JSON_SCHEMA_PATH.slice(ROOT.length + 1)}\n`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  run(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      process.stderr.write(`gen-config-docs: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
