/**
 * Record Markdown that its content cannot break: a log line or step output holding a backtick
 * fence stays inside one code block (CommonMark: the fence is longer than any run inside).
 */
import { describe, expect, it } from 'vitest';
import type { RollbackRecord } from '../core/types.js';
import { codeBlock, renderRecordMarkdown } from './markdown.js';

const record: RollbackRecord = {
  id: 'r1',
  from: 'v2',
  to: 'v1',
  release: { id: '1970-01-01T00-00-01-000Z_v2', version: 'v2', previous: 'v1', startedAt: 1000, deployedBy: 'ci', source: 'detected' },
  breach: { trigger: 'rule', rules: ['health'], reason: 'health failed', verdicts: [], decidedAt: 2100, faultAt: 1000 },
  outcome: 'rolled_back',
  startedAt: 2100,
  executedAt: 2300,
  finishedAt: 2500,
  attempts: 1,
  steps: [{ index: 0, type: 'command', description: 'command: hook', startedAt: 2100, finishedAt: 2200, ok: true, attempt: 1, output: ['printed ````` five'] }],
  verification: { healthPasses: 3, checks: [] },
};

/** The fenced blocks of a Markdown text, per CommonMark: a block ends at a fence of its char at least as long. */
function fencedBlocks(markdown: string): string[][] {
  const blocks: string[][] = [];
  let open: { fence: string; lines: string[] } | null = null;
  for (const line of markdown.split('\n')) {
    if (open) {
      const close = /^(`{3,})\s*$/.exec(line);
      if (close && close[1]!.length >= open.fence.length) {
        blocks.push(open.lines);
        open = null;
      } else open.lines.push(line);
    } else {
      const start = /^(`{3,})/.exec(line);
      if (start) open = { fence: start[1]!, lines: [] };
    }
  }
  if (open) blocks.push(['UNCLOSED', ...open.lines]);
  return blocks;
}

describe('record Markdown code blocks', () => {
  it('a log line with ``` renders inside one fenced block, and the rest of the record is not swallowed', () => {
    const logs = ['starting', '```', 'console.log("```js")', 'done'];
    const markdown = renderRecordMarkdown(record, { service: 'web', verificationProbe: 'health', requiredPasses: 3, logs });
    const blocks = fencedBlocks(markdown);
    expect(blocks).toContainEqual(logs);
    expect(blocks).toContainEqual(['printed ````` five']);
    expect(blocks.flat()).not.toContain('UNCLOSED');
    // Headings after the step output are still headings, not code.
    expect(blocks.flat().some((line) => line.startsWith('## '))).toBe(false);
  });

  it('the fence is one longer than the longest backtick run inside, and at least three', () => {
    expect(codeBlock(['plain'])).toEqual(['```', 'plain', '```']);
    expect(codeBlock(['a ```` b'])[0]).toBe('`````');
  });
});
